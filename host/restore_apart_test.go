package host_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/ring"
	"github.com/govmbus/govmbus/savedstate"
)

// lockedBuffer is a log destination safe for the restore's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines is every JSON log line whose message is msg.
func (b *lockedBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		var m map[string]any
		if l == "" {
			continue
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// corruptReadIndex writes a host→guest read index past the end of the
// ring, as a hostile guest may at any time: the ring's control page is
// in its memory.
func corruptReadIndex(ch *guest.Channel) {
	binary.LittleEndian.PutUint32(ch.In[4:], 0xffff_ff00)
}

// TestRestoreGuestsApart restores four guests of which two cannot be
// restored: one's bus state is corrupt, the other's ring, which its
// device checks as it reopens, was corrupted by the guest. Those two are
// disconnected, each with one log line saying why; the other two are
// restored, in their places, and serve on.
func TestRestoreGuestsApart(t *testing.T) {
	leakcheck.Check(t)
	const n = 4
	cfg := host.Config{Devices: []host.Device{newEchoDevice(nil)}}
	s := newServed(t, cfg)
	var clients []*guest.Client
	var chans []*guest.Channel
	for range n {
		cl := s.Connect(t, guest.Config{MemorySize: 1 << 20})
		o, err := cl.WaitOffer(testCtx(t), echoType, protocol.GUID{})
		if err != nil {
			t.Fatal(err)
		}
		ch, err := cl.Open(testCtx(t), o, guest.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		echoRoundTrip(t, ch, 5)
		clients, chans = append(clients, cl), append(chans, ch)
	}
	saved := s.Save(t)
	s.Stop()

	saved[1].State = bytes.Clone(saved[1].State)
	saved[1].State[len(saved[1].State)/2] ^= 0xff
	corruptReadIndex(chans[2])
	var logs lockedBuffer
	rcfg := cfg
	rcfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	h2, guests, err := host.RestoreOwned(rcfg, saved)
	if err != nil {
		t.Fatalf("one guest's state failed the whole restore: %v", err)
	}
	s.Host = h2
	if len(guests) != n {
		t.Fatalf("%d guests returned, want %d", len(guests), n)
	}
	for i, g := range guests {
		if bad := i == 1 || i == 2; bad != (g == nil) {
			t.Fatalf("guest %d restored: %v", i, g != nil)
		}
		if saved[i].Conn.Valid() || saved[i].Memory.Valid() || saved[i].Events != nil {
			t.Fatalf("guest %d: files not cleared", i)
		}
	}
	if guests[3].ID() <= guests[0].ID() {
		t.Fatalf("guest ids %d then %d", guests[0].ID(), guests[3].ID())
	}
	errs := h2.RestoreErrors()
	if len(errs) != n || errs[0] != nil || errs[3] != nil {
		t.Fatalf("restore errors %v", errs)
	}
	if !errors.Is(errs[1], savedstate.ErrInvalid) && !errors.Is(errs[1], host.ErrBadState) {
		t.Errorf("guest 1 not restored because %v, want a bad state", errs[1])
	}
	if !errors.Is(errs[2], ring.ErrCorrupt) {
		t.Errorf("guest 2 not restored because %v, want its ring corrupt", errs[2])
	}
	why := logs.lines(t, "guest not restored; disconnected")
	if len(why) != 2 || why[0]["index"] == why[1]["index"] {
		t.Fatalf("log lines for the guests not restored: %v", why)
	}
	for _, l := range why {
		if i, _ := l["index"].(float64); (i != 1 && i != 2) || l["err"] != errs[int(i)].Error() {
			t.Errorf("log line %v, want the error of guest 1 or 2", l)
		}
	}

	h2.Resume()
	for _, i := range []int{0, 3} {
		echoRoundTrip(t, chans[i], 20)
	}
	// The two others hear their connection close.
	for _, i := range []int{1, 2} {
		ctx := testCtx(t)
	wait:
		for {
			select {
			case _, open := <-clients[i].Rescinded():
				if !open {
					break wait
				}
			case <-ctx.Done():
				t.Fatalf("guest %d: still connected", i)
			}
		}
	}
}

// TestRestoreCorruptRingKeepsGuest: a guest that corrupted the ring of a
// channel whose server re-attaches after the restore (Guest.Offer) is
// restored, with that channel open on the ring as it is; the server finds
// the ring corrupt as it builds its endpoints, as it would while running,
// and gives that channel up (a rescind) before Resume without waiting for
// a guest whose control plane has not started.
func TestRestoreCorruptRingKeepsGuest(t *testing.T) {
	leakcheck.Check(t)
	dyn := newEchoInstance(protocol.MustParseGUID("00000000-0000-0000-0000-000000000007"), nil)
	cfg := host.Config{}
	gs := guestsOf(&cfg, func(g *host.Guest) {
		if _, err := g.Offer(dyn); err != nil {
			t.Error(err)
		}
	})
	s := newServed(t, cfg)
	cl := s.Connect(t, guest.Config{MemorySize: 1 << 20})
	o, err := cl.WaitOffer(testCtx(t), echoType, dyn.spec.InterfaceInstance)
	if err != nil {
		t.Fatal(err)
	}
	<-gs
	ch, err := cl.Open(testCtx(t), o, guest.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	echoRoundTrip(t, ch, 5)
	saved := s.Save(t)
	s.Stop()

	corruptReadIndex(ch)
	h2, guests, err := host.RestoreOwned(host.Config{}, saved)
	if err != nil {
		t.Fatal(err)
	}
	s.Host = h2
	if len(guests) != 1 || guests[0] == nil {
		t.Fatalf("the guest with a corrupt ring was not restored: %v", guests)
	}
	rc, ok := guests[0].Restored(dyn.spec)
	if !ok || !rc.Open {
		t.Fatalf("restored channel %+v, %v: want it open", rc, ok)
	}
	o2, hc, err := guests[0].Reattach(newEchoInstance(dyn.spec.InterfaceInstance, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.NewWriter(hc.Out); !errors.Is(err, ring.ErrCorrupt) {
		t.Fatalf("the server's endpoint on the corrupt ring: %v, want ring corrupt", err)
	}
	// The server gives the channel up before Resume, as a successor
	// does with a channel it cannot restore: nothing could read the
	// guest's release yet, so the rescind does not wait for it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o2.Rescind(ctx); err != nil {
		t.Fatalf("rescind before Resume: %v", err)
	}
	h2.Resume()
	select {
	case id := <-cl.Rescinded():
		if id != o.ChannelID {
			t.Fatalf("channel %d rescinded, want %d", id, o.ChannelID)
		}
	case <-testCtx(t).Done():
		t.Fatal("the guest heard no rescind")
	}
}
