package port

import (
	"net"
	"strconv"
	"testing"
)

// TestFreeBelowEphemeral: the address is loopback, bindable, and below
// the ephemeral range that outgoing connections draw from.
func TestFreeBelowEphemeral(t *testing.T) {
	top := ephemeralStart()
	for range 20 {
		addr := Free()
		if addr == "" {
			t.Fatal("no free port")
		}
		host, ps, err := net.SplitHostPort(addr)
		if err != nil || host != "127.0.0.1" {
			t.Fatalf("address %q", addr)
		}
		p, _ := strconv.Atoi(ps)
		if p < lowest || p >= top {
			t.Fatalf("port %d outside [%d, %d)", p, lowest, top)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("the free address cannot be bound: %v", err)
		}
		l.Close()
	}
}
