package guest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/transport"
)

// TestNegotiateSilentHost: a host that takes the guest's InitiateContact
// and never answers, or answers only with what does not decode, fails
// New within Config.NegotiateTimeout with ErrProtocol, though New's
// context would wait forever.
func TestNegotiateSilentHost(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer []byte // sent for every message the guest sends; nil: nothing
	}{
		{"silent", nil},
		// A VersionResponse with bytes no form of it has: not decoded.
		{"undecodable", append(protocol.Marshal(&protocol.VersionResponse{VersionSupported: true, VersionOrConnectionID: 1}), 0, 0, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, g, err := transport.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			go func() {
				buf := make([]byte, transport.MaxMessageSize)
				for {
					if _, err := h.Recv(context.Background(), buf); err != nil {
						return
					}
					if tc.answer != nil && h.Send(tc.answer) != nil {
						return
					}
				}
			}()
			done := make(chan error, 1)
			start := time.Now()
			go func() {
				cl, err := guest.New(context.Background(), g, guest.Config{MemorySize: 1 << 20, NegotiateTimeout: 100 * time.Millisecond})
				if err == nil {
					cl.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, guest.ErrProtocol) {
					t.Errorf("New: %v, want ErrProtocol", err)
				}
				t.Logf("New: %v after %v", err, time.Since(start))
			case <-time.After(10 * time.Second):
				g.Close() // ends the waiting New
				<-done
				t.Fatal("New still waits for the host's answer after 10 s")
			}
			g.Close()
		})
	}
}
