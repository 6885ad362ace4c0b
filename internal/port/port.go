// Package port holds the choice of a loopback TCP port that a process
// about to start is told to listen on.
//
// The kernel's own choice (listening on port 0) is free when it is made,
// but it comes from the ephemeral range, which the kernel also hands out
// to every outgoing connection: between the probe's close and the
// child's bind, another process's connect can take it (seen on a loaded
// machine, as "address already in use"). Free picks below the ephemeral
// range instead, where only an explicit bind can take a port.
package port

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// lowest is the lowest port Free considers: above the registered
// services a test machine may run.
const lowest = 10000

// Free returns a loopback address ("127.0.0.1:N") whose port nothing
// listened on a moment ago, chosen at random below the kernel's
// ephemeral range, or "" if none was found.
func Free() string {
	top := ephemeralStart()
	for range 64 {
		p := lowest + rand.IntN(top-lowest)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close() //nolint:errcheck // a probe
		return addr
	}
	return ""
}

// ephemeralStart is the first port of the kernel's ephemeral range
// (32768 when it cannot be read, Linux's default).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= lowest+1000 {
		return 32768
	}
	return n
}
