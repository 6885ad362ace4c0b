package blk

import (
	"errors"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
)

// TestDiskHostGone: a host that goes away while a ReadAt waits for its
// completion ends the ReadAt with ErrClosed, leaves the caller's buffer
// untouched, and the closed Disk leaves nothing running.
func TestDiskHostGone(t *testing.T) {
	leakcheck.Check(t)
	stalled := make(chan struct{})
	h := &hostileDisk{script: []byte{diskGood, diskStall}, abort: func() { close(stalled) }}
	b := testbus.New(t, testbus.Config{
		Host: host.Config{Devices: []host.Device{&testbus.RawDevice{
			Spec:  host.OfferSpec{InterfaceType: InterfaceType, InterfaceInstance: InterfaceInstance},
			Serve: h.serve,
		}}},
		Guest: guest.Config{MemorySize: 2 << 20},
	})
	d, err := Open(testbus.Context(t), b.Client, ClientConfig{InFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	p := make([]byte, 4096)
	for i := range p {
		p[i] = 0xEE
	}
	done := make(chan error, 1)
	go func() {
		_, err := d.ReadAt(p, 0)
		done <- err
	}()
	select {
	case <-stalled:
	case <-time.After(testbus.Timeout):
		t.Fatal("the READ never came")
	}
	b.Stop()
	select {
	case err = <-done:
	case <-time.After(testbus.Timeout):
		t.Fatal("ReadAt outlived the host")
	}
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadAt with the host gone: %v, want ErrClosed", err)
	}
	for i, x := range p {
		if x != 0xEE {
			t.Fatalf("byte %d of the failed read's buffer is %#x: written", i, x)
		}
	}
}
