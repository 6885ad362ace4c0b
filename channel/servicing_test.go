package channel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"

	"github.com/govmbus/govmbus/host"
)

// vsp is a server's own per-transaction state: the sequence number of each
// packet it sent, and what became of it.
type vsp struct {
	mu       sync.Mutex
	results  map[uint64]Status
	payloads map[uint64][]byte
	restored int
}

func newVSP() *vsp {
	return &vsp{results: make(map[uint64]Status), payloads: make(map[uint64][]byte)}
}

func (v *vsp) done(p *OutPacket, st Status, payload []byte) {
	v.mu.Lock()
	seq := p.Context.(uint64)
	if _, dup := v.results[seq]; dup {
		v.results[seq] = 0xDEAD
	} else {
		v.results[seq] = st
	}
	v.payloads[seq] = append([]byte(nil), payload...)
	v.mu.Unlock()
}

// save writes the packet's sequence number: 8 bytes, after reporting them.
func (v *vsp) save(p *OutPacket, buf []byte) (int, error) {
	if len(buf) < 8 {
		return 8, StatusBufferTooSmall
	}
	binary.LittleEndian.PutUint64(buf, p.Context.(uint64))
	return 8, nil
}

func (v *vsp) restore(c *Channel, lib, dev []byte) error {
	if len(dev) != 8 {
		return fmt.Errorf("vsp state of %d bytes", len(dev))
	}
	p, err := c.AllocatePacket()
	if err != nil {
		return err
	}
	if err := p.Restore(lib); err != nil {
		p.Free()
		return err
	}
	p.Context = binary.LittleEndian.Uint64(dev)
	p.SetCompletion(v.done)
	v.mu.Lock()
	v.restored++
	v.mu.Unlock()
	return nil
}

// svc is a host, a guest client and the server channel to service.
type svc struct {
	*testbus.Bus
	server *Channel
}

func newSvc(t *testing.T) *svc { return newSvcTB(t) }

func newSvcTB(t testing.TB) *svc { return &svc{Bus: testbus.New(t, testbus.Config{})} }

// configure sets up a server channel the same way before and after.
func configure(t testing.TB, g *host.Guest, v *vsp, process ProcessPacketFunc) *Channel {
	t.Helper()
	s := NewServer()
	must(t, s.SetGuest(g))
	must(t, s.SetInterface(testType, testInst))
	must(t, s.SetProcessPacketCallbacks(process, nil))
	must(t, s.SetSavePacketCallbacks(v.save, v.restore))
	t.Cleanup(func() { s.Cleanup() })
	return s
}

// chunks saves c in the chunks a random-ish buffer-size sequence gives.
func chunks(t testing.TB, c *Channel, sizes []int) [][]byte {
	t.Helper()
	must(t, c.SaveBegin())
	defer c.SaveEnd()
	var out [][]byte
	for i := 0; ; i++ {
		buf := make([]byte, sizes[i%len(sizes)])
		n, req, err := c.SaveContinue(buf)
		if n > 0 {
			out = append(out, buf[:n])
		}
		switch {
		case err == nil:
			return out
		case errors.Is(err, StatusBufferTooSmall):
			if n != 0 || req <= len(buf) {
				t.Fatalf("too small: filled %d required %d of %d", n, req, len(buf))
			}
			sizes = append([]int{req}, sizes...)
			i = -1
		case errors.Is(err, StatusBufferOverflow):
		default:
			t.Fatal(err)
		}
		if i > 100000 {
			t.Fatal("no progress")
		}
	}
}

// successor ends the old host and server as a serviced process does
// (nothing reaches the guest) and restores a host from saved, which it
// closes: s.Host and s.Guest are the restored host and guest, not yet
// resumed.
func (s *svc) successor(t testing.TB, saved []host.SavedGuest) {
	t.Helper()
	s.Stop()
	must(t, s.server.Cleanup()) // the old process's object
	s.Restore(t, host.Config{}, saved)
}

// service pauses the server, saves the bus and the channel, closes the
// old host without a word to the guest, restores a new one from
// duplicated files and a new server channel from the chunks, and starts
// it. process and v are the new server's.
func (s *svc) service(t *testing.T, v *vsp, process ProcessPacketFunc) (state []byte) {
	t.Helper()
	must(t, s.server.Pause())
	saved := s.Save(t)
	parts := chunks(t, s.server, []int{100, 4096, 333, 1 << 16})
	state = bytes.Join(parts, nil)
	s.successor(t, saved)
	h2 := s.Host
	n := configure(t, s.Guest, v, process)
	for i, p := range parts {
		err := n.RestoreFromBuffer(p)
		if i < len(parts)-1 && !errors.Is(err, StatusMoreProcessingRequired) {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if i == len(parts)-1 && err != nil {
			t.Fatalf("last chunk: %v", err)
		}
	}
	must(t, n.Enable())
	must(t, n.Start())
	h2.Resume()
	s.server = n
	return state
}

// TestServicingMidTraffic is the acceptance test: a host with a live guest
// is serviced while server transactions are queued and in flight and the
// guest's requests wait in the ring; everything completes after the
// restore, exactly once, with the right bytes.
func TestServicingMidTraffic(t *testing.T) {
	leakcheck.Check(t)
	s := newSvc(t)
	old := newVSP()
	s.server = configure(t, s.Guest, old, echo)
	must(t, s.server.Enable())
	must(t, s.server.Start())

	// The client holds the server's packets (so they stay in flight) and
	// completes them with their payload reversed once told to.
	var held sync.Mutex
	var heldPkts []*Packet
	var release atomic.Bool
	answer := func(p *Packet) {
		b := bytes.Clone(p.Payload())
		for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
			b[i], b[j] = b[j], b[i]
		}
		p.Complete(b)
	}
	cl := NewClient()
	must(t, cl.SetClient(s.Client))
	must(t, cl.SetInterface(testType, testInst))
	must(t, cl.SetRingPages(3, 3))
	must(t, cl.SetProcessPacketCallbacks(func(_ *Channel, p *Packet, _ []byte, _ PacketFlags) {
		if release.Load() {
			answer(p)
			return
		}
		held.Lock()
		heldPkts = append(heldPkts, p)
		held.Unlock()
	}, nil))
	t.Cleanup(func() { cl.Cleanup() })
	must(t, cl.Enable())
	waitState(t, cl, StateActive)
	waitState(t, s.server, StateActive)

	t.Cleanup(func() {
		// Whatever happens, the client must not hold packets at Disable.
		release.Store(true)
		held.Lock()
		hp := heldPkts
		heldPkts = nil
		held.Unlock()
		for _, p := range hp {
			p.Complete(nil)
		}
	})

	// Guest requests, echoed by the server: some before the server's
	// traffic, some while the server is paused (they wait in the ring
	// over the save), some after the restore.
	const m = 60
	var echoed sync.Map
	var echoes atomic.Int32
	sendReq := func(i int) {
		p, err := cl.AllocatePacket()
		must(t, err)
		want := bytes.Repeat([]byte{byte(i)}, 40)
		p.SetCompletion(func(p *OutPacket, st Status, got []byte) {
			if st == StatusSuccess && bytes.Equal(got, want) {
				if _, dup := echoed.LoadOrStore(i, true); !dup {
					echoes.Add(1)
				}
			}
		})
		must(t, p.Send(want, SendWaitForCompletion))
	}
	for i := range m / 3 {
		sendReq(i)
	}
	eventually(t, "first echoes", func() bool { return echoes.Load() == m/3 })

	// Server transactions: more than the client's pool and ring hold,
	// so some are in flight and some queued in the server at the save.
	const n = 100
	payload := func(seq uint64) []byte {
		b := bytes.Repeat([]byte{byte(seq), byte(seq >> 8)}, 256)
		binary.LittleEndian.PutUint64(b, seq)
		return b
	}
	for seq := uint64(0); seq < n; seq++ {
		p, err := s.server.AllocatePacket()
		must(t, err)
		p.Context = seq
		p.SetCompletion(old.done)
		must(t, p.Send(payload(seq), SendWaitForCompletion))
	}
	eventually(t, "client pool full", func() bool { held.Lock(); defer held.Unlock(); return len(heldPkts) == DefaultMaxPacketCount })
	must(t, s.server.Pause())
	for i := m / 3; i < 2*m/3; i++ {
		sendReq(i)
	}

	v := newVSP()
	state := s.service(t, v, echo)
	if v.restored == 0 {
		t.Fatal("no packet restored")
	}
	t.Logf("state %d bytes, %d packets restored", len(state), v.restored)

	// The guest releases what it held; everything completes.
	release.Store(true)
	held.Lock()
	hp := heldPkts
	heldPkts = nil
	held.Unlock()
	for _, p := range hp {
		answer(p)
	}
	for i := 2 * m / 3; i < m; i++ {
		sendReq(i)
	}
	eventually(t, "every echo", func() bool { return echoes.Load() == m })
	eventually(t, "every server transaction", func() bool {
		old.mu.Lock()
		v.mu.Lock()
		defer old.mu.Unlock()
		defer v.mu.Unlock()
		done := 0
		for seq := uint64(0); seq < n; seq++ {
			if st, ok := v.results[seq]; ok && st == StatusSuccess {
				done++
			} else if st, ok := old.results[seq]; ok && st == StatusSuccess {
				done++
			}
		}
		return done == n
	})
	v.mu.Lock()
	defer v.mu.Unlock()
	for seq, st := range v.results {
		if st != StatusSuccess {
			t.Fatalf("transaction %d: %v after the restore", seq, st)
		}
		want := payload(seq)
		for i, j := 0, len(want)-1; i < j; i, j = i+1, j-1 {
			want[i], want[j] = want[j], want[i]
		}
		if !bytes.Equal(v.payloads[seq], want) {
			t.Fatalf("transaction %d: wrong completion payload", seq)
		}
	}
}
