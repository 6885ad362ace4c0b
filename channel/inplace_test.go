package channel

import (
	"bytes"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/govmbus/govmbus/internal/leakcheck"
)

// inPlacePacket is packet i of the in-place tests: its index, then a
// pattern, 8 + i%1500 bytes in all, so packets land at every ring offset
// and some wrap around the ring's end.
func inPlacePacket(i int) []byte {
	b := make([]byte, 8+i%1500)
	binary.LittleEndian.PutUint64(b, uint64(i))
	for j := 8; j < len(b); j++ {
		b[j] = byte(i + j*7)
	}
	return b
}

// sendAll sends packets 0 … n-1 from c, each with its own packet object.
func sendAll(t *testing.T, c *Channel, n int) {
	t.Helper()
	for i := range n {
		p, err := c.AllocatePacket()
		must(t, err)
		p.SetCompletion(func(p *OutPacket, _ Status, _ []byte) { p.Free() })
		must(t, p.Send(inPlacePacket(i), 0))
	}
}

// inPlacePair is an active pair whose server sees payloads in place and
// whose client's rings have one data page, so that packets wrap around
// the ring's end every few sends.
func inPlacePair(t *testing.T, r *rig, proc ProcessPacketFunc) (s, c *Channel) {
	t.Helper()
	s = r.newServer(t, proc, StateCallbacks{})
	must(t, s.SetInPlacePayloads(true))
	must(t, s.SetMaxPacketSize(2048))
	c = r.newClient(t, ignore, StateCallbacks{})
	must(t, c.SetRingPages(2, 2))
	must(t, s.Enable())
	must(t, s.Start())
	must(t, c.Enable())
	waitState(t, s, StateActive)
	waitState(t, c, StateActive)
	return s, c
}

func TestInPlacePayloads(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	const n = 3000
	var inPlace, copied, bad atomic.Int32
	var next atomic.Int64
	proc := func(_ *Channel, p *Packet, payload []byte, _ PacketFlags) {
		i := int(next.Add(1) - 1)
		// The channel pads payloads to 8 bytes.
		if want := inPlacePacket(i); !bytes.Equal(payload[:len(want)], want) || !bytes.Equal(p.Payload(), payload) {
			bad.Add(1)
		}
		if p.view != nil && unsafe.SliceData(payload) == unsafe.SliceData(p.view) {
			inPlace.Add(1)
		} else {
			copied.Add(1)
		}
		p.Complete(nil)
	}
	s, c := inPlacePair(t, r, proc)
	sendAll(t, c, n)
	eventually(t, "every packet indicated", func() bool { return next.Load() == n })
	if bad.Load() != 0 {
		t.Fatalf("%d packets indicated with the wrong bytes", bad.Load())
	}
	// Most packets lie in one piece and are seen in place; those that
	// wrap are copied.
	if inPlace.Load() < n/2 || copied.Load() == 0 {
		t.Fatalf("%d packets in place, %d copied: want most in place and the wrapped ones copied", inPlace.Load(), copied.Load())
	}
	// The receive side's counters are published when its batch ends,
	// which may be just after the last packet was indicated.
	eventually(t, "stats count every packet in", func() bool { return s.Stats().PacketsIn == n })
}

func TestInPlaceDeferToPassiveCopies(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	const n = 200
	var mu sync.Mutex
	var deferred *Packet
	var deferredPayload []byte
	release := make(chan struct{})
	var workerOK, rxSeen atomic.Int32
	const pick = 77 // the packet deferred
	proc := func(_ *Channel, p *Packet, payload []byte, _ PacketFlags) {
		mu.Lock()
		again := deferred == p
		mu.Unlock()
		if !again && binary.LittleEndian.Uint64(payload) != pick {
			rxSeen.Add(1)
			p.Complete(nil)
			return
		}
		if !again {
			mu.Lock()
			deferred = p
			mu.Unlock()
			p.DeferToPassive()
			return
		}
		// On the worker: by now the ring has been reused many times
		// over; the packet's bytes must be its own copy.
		<-release
		want := inPlacePacket(pick)
		if bytes.Equal(payload[:len(want)], want) && bytes.Equal(p.Payload(), payload) {
			deferredPayload = payload
			workerOK.Add(1)
		}
		p.Complete(nil)
	}
	s, c := inPlacePair(t, r, proc)
	sendAll(t, c, n)
	eventually(t, "the other packets", func() bool { return rxSeen.Load() == n-1 })
	close(release)
	eventually(t, "the deferred packet done", func() bool { return s.Outstanding() == 0 })
	if workerOK.Load() != 1 {
		t.Fatal("the deferred packet reached the worker with other bytes")
	}
	if len(deferredPayload) == 0 {
		t.Fatal("no payload on the worker")
	}
}
