package guest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/transport"
)

// TestConnectOfferRescinded: the host offers a connection's channel and
// rescinds it before Connect has looked at the offers. Connect, with no
// deadline, ends with ErrRescinded instead of waiting for an offer that
// will not come again.
func TestConnectOfferRescinded(t *testing.T) {
	hc, gc, err := transport.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	hostDone := make(chan struct{})
	go func() { // accepts the version, then takes in whatever comes
		defer close(hostDone)
		buf := make([]byte, transport.MaxMessageSize)
		for {
			n, err := hc.Recv(context.Background(), buf)
			if err != nil {
				return
			}
			if m, err := protocol.Decode(buf[:n]); err == nil && m.Type() == protocol.TypeInitiateContact {
				hc.Send(protocol.Marshal(&protocol.VersionResponse{VersionSupported: true, VersionOrConnectionID: 1, HasFeatures: true})) //nolint:errcheck
			}
		}
	}()
	defer func() { <-hostDone }()
	ctx := context.Background()
	cl, err := New(ctx, gc, Config{MemorySize: 64 * 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	service, endpoint := protocol.GUID{0x5e}, protocol.GUID{0xe9}
	done := make(chan error, 1)
	go func() {
		_, err := cl.Connect(ctx, protocol.TLConnectRequest{EndpointID: endpoint, ServiceID: service})
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cl.mu.Lock()
		_, waiting := cl.tlWaiters[endpoint]
		cl.mu.Unlock()
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Connect did not start waiting")
		}
		time.Sleep(time.Millisecond)
	}
	// The offer as the receive loop would have taken it, but with Connect
	// not yet woken to look at it; then its rescind.
	cl.mu.Lock()
	cl.offers[3] = Offer{ChannelID: 3, InterfaceType: service, InterfaceInstance: endpoint, Flags: protocol.OfferFlagTLNPIProvider}
	cl.mu.Unlock()
	cl.rescind(3)
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		cl.Close()
		<-done
		t.Fatal("Connect waits for an offer the host rescinded")
	}
	if !errors.Is(err, ErrRescinded) {
		t.Fatalf("Connect: %v, want ErrRescinded", err)
	}
}
