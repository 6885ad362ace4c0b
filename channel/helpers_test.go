package channel

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/testbus"
	"github.com/govmbus/govmbus/protocol"
)

var (
	testType = protocol.MustParseGUID("0a1b2c3d-0000-4000-8000-000000000001")
	testInst = protocol.MustParseGUID("0a1b2c3d-0000-4000-8000-0000000000aa")
)

// rig is a host and a guest client in one process over transport.Pipe.
type rig struct {
	h     *host.Host
	guest *host.Guest
	cl    *guest.Client
}

func newRig(t testing.TB) *rig {
	t.Helper()
	b := testbus.New(t, testbus.Config{})
	return &rig{h: b.Host, guest: b.Guest, cl: b.Client}
}

// recorder logs callbacks in order.
type recorder struct {
	mu  sync.Mutex
	log []string
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	r.log = append(r.log, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.log, ",")
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.log = nil
	r.mu.Unlock()
}

// sendBytes sends n one-byte packets from c, without completions.
func sendBytes(t *testing.T, c *Channel, n int32) {
	t.Helper()
	for range n {
		p, err := c.AllocatePacket()
		must(t, err)
		must(t, p.Send([]byte("x"), 0))
	}
}

// callbacks records every state callback under prefix.
func (r *recorder) callbacks() StateCallbacks {
	return StateCallbacks{
		Opened:      func(*Channel) error { r.add("Opened"); return nil },
		Closed:      func(*Channel) { r.add("Closed") },
		Suspend:     func(*Channel) { r.add("Suspend") },
		Started:     func(*Channel) { r.add("Started") },
		PostStarted: func(*Channel) { r.add("PostStarted") },
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newServer makes a server channel of the rig's guest.
func (r *rig) newServer(t testing.TB, process ProcessPacketFunc, cb StateCallbacks) *Channel {
	t.Helper()
	s := NewServer()
	must(t, s.SetGuest(r.guest))
	must(t, s.SetInterface(testType, testInst))
	must(t, s.SetProcessPacketCallbacks(process, nil))
	must(t, s.SetStateCallbacks(cb))
	t.Cleanup(func() { s.Cleanup() })
	return s
}

// newClient makes a client channel of the rig's guest client.
func (r *rig) newClient(t testing.TB, process ProcessPacketFunc, cb StateCallbacks) *Channel {
	t.Helper()
	c := NewClient()
	must(t, c.SetClient(r.cl))
	must(t, c.SetInterface(testType, testInst))
	must(t, c.SetProcessPacketCallbacks(process, nil))
	must(t, c.SetStateCallbacks(cb))
	t.Cleanup(func() { c.Cleanup() })
	return c
}

// waitState polls until c is in state want.
func waitState(t testing.TB, c *Channel, want State) {
	t.Helper()
	deadline := time.Now().Add(testbus.Timeout)
	for c.State() != want {
		if time.Now().After(deadline) {
			t.Fatalf("state %v, want %v", c.State(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// eventually polls cond.
var eventually = testbus.Eventually

// echo completes every packet with its own payload.
func echo(_ *Channel, p *Packet, payload []byte, _ PacketFlags) { p.Complete(payload) }

// ignore completes every packet with no payload.
func ignore(_ *Channel, p *Packet, _ []byte, _ PacketFlags) { p.Complete(nil) }

// pair is an enabled, active server/client pair.
func (r *rig) pair(t testing.TB, sp, cp ProcessPacketFunc, scb, ccb StateCallbacks) (s, c *Channel) {
	t.Helper()
	s = r.newServer(t, sp, scb)
	c = r.newClient(t, cp, ccb)
	must(t, s.Enable())
	must(t, s.Start())
	must(t, c.Enable())
	waitState(t, c, StateActive)
	waitState(t, s, StateActive)
	return s, c
}
