package echo

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/testbus"
	"github.com/govmbus/govmbus/ring"
)

// The reactions of a hostile echo host to each ping, one script byte each.
const (
	echoGood       = iota // the request's bytes back
	echoTwice             // that completion, twice
	echoStrangerTx        // a completion for a transaction never sent, then the good one
	echoStall             // no completion: the client is closed under the ping
	echoFlip              // the bytes back with one flipped
	echoShort             // fewer bytes back than were sent
	echoInBand            // an in-band packet with the ping's transaction id, then the good completion
	echoCorrupt           // the write index moved past the end of the ring
	echoReactions
)

// hostileEcho answers pings from its rings as the script says.
type hostileEcho struct {
	script []byte
	abort  func()
	broke  atomic.Bool
	bad    atomic.Uint64 // completions sent with wrong bytes
}

func (h *hostileEcho) next() byte {
	if len(h.script) == 0 {
		return echoGood
	}
	b := h.script[0]
	h.script = h.script[1:]
	return b
}

func (h *hostileEcho) serve(ctx context.Context, ch *host.Channel) {
	r, err := ring.NewReader(ch.In)
	if err != nil {
		return
	}
	w, err := ring.NewWriter(ch.Out)
	if err != nil {
		return
	}
	type req struct {
		txid    uint64
		payload []byte
	}
	for {
		var reqs []req
		for {
			var p ring.Packet
			if r.Next(&p) != nil {
				break
			}
			reqs = append(reqs, req{p.TransactionID, p.AppendPayload(nil)})
		}
		if r.Commit() {
			ch.ToGuest.Signal() //nolint:errcheck // the guest may have gone
		}
		for _, q := range reqs {
			if h.broke.Load() {
				break
			}
			h.react(ch, w, q.txid, q.payload)
		}
		if !h.broke.Load() {
			w.Commit()
		}
		if len(reqs) > 0 {
			ch.ToGuest.Signal() //nolint:errcheck
			continue
		}
		if ch.FromGuest.Wait(ctx) != nil {
			return
		}
	}
}

func (h *hostileEcho) react(ch *host.Channel, w *ring.Writer, txid uint64, payload []byte) {
	switch h.next() % echoReactions {
	case echoGood:
		w.WriteCompletion(txid, payload) //nolint:errcheck // a full ring loses it, as a hostile host may
	case echoTwice:
		w.WriteCompletion(txid, payload) //nolint:errcheck
		w.WriteCompletion(txid, payload) //nolint:errcheck
	case echoStrangerTx:
		w.WriteCompletion(txid^uint64(h.next())<<32^1, payload) //nolint:errcheck
		w.WriteCompletion(txid, payload)                        //nolint:errcheck
	case echoStall:
		h.abort()
	case echoFlip:
		bad := append([]byte(nil), payload...)
		bad[int(h.next())%len(bad)] ^= 0x80
		h.bad.Add(1)
		w.WriteCompletion(txid, bad) //nolint:errcheck
	case echoShort:
		h.bad.Add(1)
		w.WriteCompletion(txid, payload[:int(h.next())%len(payload)]) //nolint:errcheck
	case echoInBand:
		w.WriteInBand(txid, 0, payload)  //nolint:errcheck
		w.WriteCompletion(txid, payload) //nolint:errcheck
	case echoCorrupt:
		w.WriteCompletion(txid, payload) //nolint:errcheck
		w.Commit()
		idx := uint32(len(ch.Out)) + uint32(h.next())<<3
		ch.Out[0], ch.Out[1], ch.Out[2], ch.Out[3] = byte(idx), byte(idx>>8), byte(idx>>16), byte(idx>>24)
		h.broke.Store(true)
	}
}

// FuzzPingHostile runs Ping and PingFromCompletion against a host that answers each request as
// the input says: completions twice, for transactions never sent, with a
// byte flipped, short, in-band packets instead, none, a corrupt ring.
// Ping, without a per-request timeout, must return (the client closed
// under a stalled request, the channel closed under a broken ring),
// with an error naming the host for a broken ring, and count as
// corrupted no more pings than the host answered wrongly.
func FuzzPingHostile(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{echoTwice, echoStrangerTx, 3, echoInBand, echoGood})
	f.Add([]byte{echoFlip, 5, echoShort, 3})
	f.Add([]byte{echoGood, echoStall})
	f.Add([]byte{echoGood, echoCorrupt, 1})
	f.Fuzz(func(t *testing.T, script []byte) {
		pingHostile(t, script, false)
		pingHostile(t, script, true)
	})
}

// pingHostile is one run of FuzzPingHostile: Ping, or with chained
// PingFromCompletion, against a host that follows script.
func pingHostile(t *testing.T, script []byte, chained bool) {
	var (
		mu      sync.Mutex
		client  *Client
		aborted bool
		closing sync.Once
		closed  sync.WaitGroup
	)
	closeClient := func() { closing.Do(func() { client.Close() }) } //nolint:errcheck
	h := &hostileEcho{script: script, abort: func() {
		mu.Lock()
		defer mu.Unlock()
		aborted = true
		if client != nil {
			closed.Go(closeClient)
		}
	}}
	defer closed.Wait()
	b := testbus.New(t, testbus.Config{
		Host: host.Config{Devices: []host.Device{&testbus.RawDevice{
			Spec:  host.OfferSpec{InterfaceType: InterfaceType, InterfaceInstance: InterfaceInstance},
			Serve: h.serve,
		}}},
		Guest: guest.Config{MemorySize: 2 << 20},
	})
	c, err := Open(testbus.Context(t), b.Client, ClientConfig{RingPages: 4})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	client = c
	if aborted {
		closed.Go(closeClient)
	}
	mu.Unlock()
	defer closeClient()
	done := make(chan struct{})
	var (
		res  PingResult
		perr error
	)
	go func() {
		defer close(done)
		ping := c.Ping
		if chained {
			ping = c.PingFromCompletion
		}
		res, perr = ping(context.Background(), 16, 64, channel.NoTimeout)
	}()
	select {
	case <-done:
	case <-time.After(testbus.Timeout):
		t.Fatalf("Ping hung (from completions: %v)", chained)
	}
	mu.Lock()
	stalled := aborted
	mu.Unlock()
	if h.broke.Load() && !errors.Is(perr, guest.ErrProtocol) && !stalled {
		t.Errorf("Ping (from completions: %v) after the host broke the ring: %v, want guest.ErrProtocol", chained, perr)
	}
	if perr != nil && !errors.Is(perr, guest.ErrProtocol) && !errors.Is(perr, channel.StatusDeviceRemoved) && !errors.Is(perr, channel.StatusInvalidDeviceState) {
		t.Errorf("Ping (from completions: %v): %v: names neither the host nor the channel's end", chained, perr)
	}
	if res.Received > res.Sent || res.Corrupted > h.bad.Load() || res.Lost != 0 {
		t.Errorf("Ping (from completions: %v) counted %+v with %d wrong answers from the host", chained, res, h.bad.Load())
	}
}
