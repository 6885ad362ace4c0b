package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/transport"
)

// clientActions are what a client session picks from: its control plane
// is package guest's, well-behaved, so the abuse is of the rings, the
// signals and raw messages beside the client's.
var clientActions = []action{
	{"ring-write-index-garbage", 2, (*session).ringWriteIndexGarbage},
	{"ring-write-index-past-end", 2, (*session).ringWriteIndexPastEnd},
	{"ring-bad-descriptor", 4, (*session).ringBadDescriptor},
	{"ring-read-index-garbage", 2, (*session).ringReadIndexGarbage},
	{"ring-control-garbage", 2, (*session).ringControlGarbage},
	{"ring-rewrite-while-read", 2, (*session).ringRewriteWhileRead},
	{"ring-fill-never-drain", 3, (*session).ringFillNeverDrain},
	{"signal-flood", 2, (*session).signalFlood},
	{"msg-garbage", 1, (*session).msgGarbage},
	{"msg-unknown-type", 1, (*session).msgUnknownType},
	{"close-unopened", 1, (*session).closeUnopened},
}

// clientSession connects through package guest, opens channels the way a
// guest should, and then abuses their rings and signals.
func clientSession(ctx context.Context, cfg Config, rng *rand.Rand, rep *Report) error {
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := transport.Dial(dctx, cfg.Socket)
	if err != nil {
		return err
	}
	cl, err := guest.New(dctx, c, guest.Config{MemorySize: cfg.MemorySize})
	if err != nil {
		c.Close()
		return err
	}
	rep.Sessions++
	s := &session{ctx: ctx, rng: rng, rep: rep, c: c, mem: cl.Memory(), client: cl,
		msgs: make(chan protocol.Message), done: make(chan struct{}), open: make(map[uint32]*rings)}
	go func() {
		// The client's Rescinded channel is closed when the connection
		// ends; the client answers the rescinds itself.
		for range cl.Rescinded() {
		}
		close(s.done)
	}()
	defer s.close()

	offers, err := cl.RequestOffers(dctx)
	if err != nil {
		rep.add("client-open", outcomeOf(s, err))
		return nil
	}
	for _, o := range offers {
		s.offers = append(s.offers, &protocol.OfferChannel{ChannelID: o.ChannelID, InterfaceType: o.InterfaceType})
	}
	// Open one or two channels as a guest should.
	for _, i := range rng.Perm(len(offers))[:min(len(offers), 1+rng.IntN(2))] {
		ch, err := cl.Open(dctx, offers[i], guest.OpenOptions{OutPages: 2 + rng.IntN(3), InPages: 2 + rng.IntN(3)})
		if err != nil {
			rep.add("client-open", outcomeOf(s, err))
			continue
		}
		rep.add("client-open", outOpened)
		s.open[ch.Offer.ChannelID] = &rings{id: ch.Offer.ChannelID, gpadl: ch.RingGpadl, out: ch.Out, in: ch.In, toHost: ch.ToHost, fromHost: ch.FromHost}
	}
	if len(s.open) == 0 {
		return nil
	}
	s.misbehave(ctx, rng, rep, clientActions)
	return nil
}

// outcomeOf names what a failed guest request says about the host.
func outcomeOf(s *session, err error) string {
	if s.gone() {
		return outDisconnected
	}
	if se, ok := err.(*guest.StatusError); ok {
		return fmt.Sprintf("%s refused status %#x", se.Op, se.Status)
	}
	if err == context.DeadlineExceeded {
		return outNoAnswer
	}
	return "failed"
}
