package main

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/testbus"
)

// The relay's bounds on this machine, measured beside the relay
// benchmarks: a Unix socket between this process and a second one (this
// test binary again, a peer that echoes or reads and discards), the hop
// a relayed byte takes twice besides the bus's.

// unixPeerEnv names the socket a test binary started as a Unix peer
// listens on; unixPeerModeEnv says "echo" or "discard".
const (
	unixPeerEnv     = "VMBUS_TEST_UNIX_PEER"
	unixPeerModeEnv = "VMBUS_TEST_UNIX_PEER_MODE"
)

// unixPeer is the second process: it accepts one connection on path,
// echoes it or reads it to the end, and returns the exit status.
func unixPeer(path, mode string) int {
	l, err := net.Listen("unix", path)
	if err != nil {
		return 1
	}
	c, err := l.Accept()
	l.Close()
	if err != nil {
		return 1
	}
	defer c.Close()
	buf := make([]byte, 64<<10)
	if mode == "echo" {
		io.CopyBuffer(c, c, buf) //nolint:errcheck // ends with the peer
		return 0
	}
	io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, buf) //nolint:errcheck // ends with the peer
	return 0
}

// dialUnixPeer starts the peer process and connects to it; cpu reads
// the CPU time both processes have used so far.
func dialUnixPeer(b *testing.B, mode string) (c net.Conn, cpu func() time.Duration) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "peer.sock")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), unixPeerEnv+"="+path, unixPeerModeEnv+"="+mode)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if c, err = net.Dial("unix", path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			b.Fatalf("the peer process does not listen: %v", err)
		}
		time.Sleep(5 * time.Millisecond) // polls for the peer's socket to appear: setup, not measured
	}
	b.Cleanup(func() {
		c.Close()
		if err := cmd.Wait(); err != nil {
			b.Errorf("peer: %v", err)
		}
	})
	return c, func() time.Duration { return testbus.CPUTime(b) + processCPU(b, cmd.Process.Pid) }
}

// BenchmarkUnixStream: 64 KiB writes to a second process that reads
// them, the Unix socket alone.
func BenchmarkUnixStream(b *testing.B) {
	c, cpu := dialUnixPeer(b, "discard")
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	cpu0 := cpu()
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu, cpu0)
}

// BenchmarkUnixRoundTrip: one byte to a second process and back.
func BenchmarkUnixRoundTrip(b *testing.B) {
	c, cpu := dialUnixPeer(b, "echo")
	buf := make([]byte, 1)
	b.SetBytes(1)
	b.ReportAllocs()
	cpu0 := cpu()
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu, cpu0)
}
