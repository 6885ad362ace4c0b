package transport

import (
	"errors"
	"testing"
	"time"
)

// TestSendTimeout: a peer that never reads fills its receive queue; with a
// send timeout, the next Send fails with ErrSendTimeout after about that
// long instead of blocking for ever, and the connection stays usable.
func TestSendTimeout(t *testing.T) {
	checkLeaks(t)
	host, guest := pipe(t)
	host.SetSendTimeout(100 * time.Millisecond)
	msg := make([]byte, MaxMessageSize)
	var err error
	start := time.Now()
	for i := 0; i < 1<<20; i++ {
		if err = host.Send(msg); err != nil {
			break
		}
	}
	took := time.Since(start)
	if !errors.Is(err, ErrSendTimeout) {
		t.Fatalf("Send to a peer that never reads: %v, want ErrSendTimeout", err)
	}
	if took > 5*time.Second {
		t.Fatalf("Send gave up after %v, want about 100ms", took)
	}
	// The peer reads again: sends go through.
	recvString(t, guest) // the host's hello is consumed by the first Recv
	if err := host.Send([]byte("x")); err != nil {
		t.Fatalf("Send after the peer read: %v", err)
	}
	// Without a timeout the send would block; Close ends it.
	host.SetSendTimeout(0)
	done := make(chan error, 1)
	go func() {
		for {
			if err := host.Send(msg); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		t.Fatalf("Send without a timeout returned %v while the peer does not read", err)
	case <-time.After(300 * time.Millisecond):
	}
	host.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked Send after Close: %v", err)
	}
}
