package hostchaos

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/transport"
)

// session is one guest's connection, relayed to the real host: the two
// transports, the guest's memory, what the relay learnt of the guest's
// GPADLs and channels, and what it did and saw.
type session struct {
	number   uint64
	ctx      context.Context
	guest    *transport.Conn // the guest's connection; this side is the host
	host     *transport.Conn // the connection to the real host; this side is the guest
	upstream string

	// Each goroutine of the session draws from its own PCG, all seeded
	// from the session's, so one's draws do not depend on the others'
	// timing.
	upRng, downRng, injRng *rand.Rand
	// armed are the kinds this session may try, chosen at its start.
	armed map[string]bool

	stop     chan struct{} // closed when the session ends
	stopOnce sync.Once
	// pumpCtx ends with the session; pumps are the goroutines passing
	// signals (relayEvents), each drawing from a PCG of its own.
	pumpCtx    context.Context
	pumpCancel context.CancelFunc
	pumps      sync.WaitGroup
	pumpSeed   *rand.Rand // under mu
	// gate is held through a servicing-like pause: no message passes
	// either way while it is.
	gate sync.RWMutex

	mu             sync.Mutex
	mem            *guestmem.Memory
	gpadls         map[uint32][]uint64 // the PFNs of each GPADL, in order
	chans          map[uint32]*openChan
	offers         map[uint32]protocol.OfferChannel
	opening        map[uint32]bool // OpenChannel sent, no result passed down yet
	mappings       []*guestmem.Mapping
	events         []*transport.Event
	muted          bool // stall-forever: the host's messages are dropped from now on
	acts           []act
	steps          []step
	end            string
	endAt          time.Time
	upstreamFailed bool
}

// openChan is a channel the guest opened: its host→guest ring, as the
// relay maps it, and the event that signals the guest.
type openChan struct {
	id      uint32
	in      []byte // control page and data of the ring the guest reads
	toGuest *transport.Event
	// stream: an hvsock connection's channel, a byte stream with no
	// sequence numbers, where a packet written twice is data sent twice.
	stream bool
}

// act is one misbehaviour: its kind, when, and its outcome if it was
// known at once (else the guest's next step decides it).
type act struct {
	kind    string
	at      time.Time
	outcome string
}

// step is something the guest did that tells how it took a misbehaviour.
type step struct {
	at   time.Time
	what string
}

// How sessions end.
const (
	endGuest    = "guest hung up"
	endHost     = "host hung up"
	endChaos    = "dropped by chaos"
	endRun      = "run ended"
	endUpstream = "upstream unreachable"
)

func newSession(ctx context.Context, number uint64, rng *rand.Rand, c *transport.Conn, upstream string, only []string) *session {
	s := &session{
		number:   number,
		ctx:      ctx,
		guest:    c,
		upstream: upstream,
		upRng:    rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())),
		downRng:  rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())),
		injRng:   rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())),
		pumpSeed: rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())),
		armed:    arm(rng, only),
		stop:     make(chan struct{}),
		gpadls:   make(map[uint32][]uint64),
		chans:    make(map[uint32]*openChan),
		offers:   make(map[uint32]protocol.OfferChannel),
		opening:  make(map[uint32]bool),
	}
	s.pumpCtx, s.pumpCancel = context.WithCancel(ctx)
	return s
}

// run relays the session until one side hangs up, chaos drops it or the
// run ends, and releases everything it held.
func (s *session) run() {
	dctx, cancel := context.WithTimeout(s.ctx, upstreamWait)
	h, err := transport.Dial(dctx, s.upstream)
	cancel()
	if err != nil {
		s.mu.Lock()
		s.upstreamFailed = true
		s.mu.Unlock()
		s.finish(endUpstream)
		s.guest.Close()
		return
	}
	s.host = h
	s.guest.SetSendTimeout(sendWait)
	s.host.SetSendTimeout(sendWait)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); s.up() }()
	go func() { defer wg.Done(); s.down() }()
	go func() { defer wg.Done(); s.inject() }()
	select {
	case <-s.stop:
	case <-s.ctx.Done():
		s.finish(endRun)
	}
	wg.Wait()
	s.pumps.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.mappings {
		m.Close()
	}
	for _, e := range s.events {
		e.Close()
	}
	if s.mem != nil {
		s.mem.Close()
	}
}

// finish ends the session, the first reason winning.
func (s *session) finish(why string) {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.end, s.endAt = why, time.Now()
		s.mu.Unlock()
		close(s.stop)
		s.pumpCancel()
		// Closing both connections wakes every goroutine of the session
		// blocked on either.
		s.guest.Close()
		if s.host != nil {
			s.host.Close()
		}
	})
}

// endOf names why a Recv failed.
func (s *session) endOf(err error, peer string) string {
	if s.ctx.Err() != nil {
		return endRun
	}
	select {
	case <-s.stop:
		return endChaos
	default:
	}
	if errors.Is(err, transport.ErrPeerClosed) || errors.Is(err, io.EOF) {
		return peer
	}
	return peer + " (" + err.Error() + ")"
}

// sleep waits d or until the session ends; false if it ended.
func (s *session) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stop:
		return false
	}
}

// did records a misbehaviour whose outcome the guest's next step tells.
func (s *session) did(kind string) {
	s.mu.Lock()
	s.acts = append(s.acts, act{kind: kind, at: time.Now()})
	s.mu.Unlock()
}

// didKnown records a misbehaviour whose outcome is known at once.
func (s *session) didKnown(kind, outcome string) {
	s.mu.Lock()
	s.acts = append(s.acts, act{kind: kind, at: time.Now(), outcome: outcome})
	s.mu.Unlock()
}

// saw records a step of the guest's.
func (s *session) saw(what string) {
	s.mu.Lock()
	s.steps = append(s.steps, step{at: time.Now(), what: what})
	s.mu.Unlock()
}

type outcome struct{ kind, outcome string }

// outcomes judges each act by the guest's first telling step within
// reactWindow after it.
func (s *session) outcomes() []outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]outcome, 0, len(s.acts))
	for _, a := range s.acts {
		o := a.outcome
		if o == "" {
			o = s.reaction(a.at)
		}
		out = append(out, outcome{a.kind, o})
	}
	return out
}

// reaction is what the guest did within reactWindow after t. Must hold mu.
func (s *session) reaction(t time.Time) string {
	until := t.Add(reactWindow)
	for _, st := range s.steps {
		if st.at.Before(t) || st.at.After(until) {
			continue
		}
		return st.what
	}
	if !s.endAt.IsZero() && !s.endAt.After(until) {
		if s.end == endGuest {
			return "guest hung up"
		}
		return "session ended (" + s.end + ")"
	}
	return "guest carried on"
}

// sendGuest sends msg to the guest; a failure ends the session.
func (s *session) sendGuest(msg []byte) bool {
	if err := s.guest.Send(msg); err != nil {
		s.finish(s.endOf(err, endGuest))
		return false
	}
	return true
}

// up passes the guest's messages, memory and events to the real host.
func (s *session) up() {
	buf := make([]byte, transport.MaxMessageSize)
	memSent := false
	for {
		n, err := s.guest.Recv(s.ctx, buf)
		if errors.Is(err, io.ErrShortBuffer) {
			continue // cannot happen: buf holds the largest message
		}
		if err != nil {
			s.finish(s.endOf(err, endGuest))
			s.saw("guest hung up")
			return
		}
		if !memSent {
			if m, err := s.guest.TakeMemory(); err == nil {
				s.mu.Lock()
				s.mem = m
				s.mu.Unlock()
				if err := s.host.SendMemory(m); err != nil {
					s.finish(s.endOf(err, endHost))
					return
				}
				memSent = true
			}
		}
		msg := buf[:n]
		m, derr := protocol.Decode(msg)
		if derr == nil {
			if !s.learnUp(m) {
				return
			}
			if !s.upHooks(m) {
				return
			}
		}
		s.gate.RLock()
		err = s.host.Send(msg)
		s.gate.RUnlock()
		if err != nil {
			s.finish(s.endOf(err, endHost))
			return
		}
	}
}

// learnUp keeps what the relay needs of a guest's message: GPADL pages,
// the events and ring of an open. False if the session ended.
func (s *session) learnUp(m protocol.Message) bool {
	switch m := m.(type) {
	case *protocol.GpadlHeader:
		s.mu.Lock()
		if m.RangeCount >= 1 && len(m.Data) > 1 {
			s.gpadls[m.GpadlID] = append([]uint64(nil), m.Data[1:]...)
		}
		s.mu.Unlock()
	case *protocol.GpadlBody:
		s.mu.Lock()
		if p, ok := s.gpadls[m.GpadlID]; ok && len(p) < 1<<16 {
			s.gpadls[m.GpadlID] = append(p, m.Data...)
		}
		s.mu.Unlock()
	case *protocol.OpenChannel:
		return s.learnOpen(m)
	case *protocol.CloseChannel:
		s.saw("guest closed the channel")
		s.mu.Lock()
		delete(s.chans, m.ChannelID)
		s.mu.Unlock()
	case *protocol.RelIDReleased:
		s.saw("guest released the channel")
		s.mu.Lock()
		delete(s.chans, m.ChannelID)
		s.mu.Unlock()
	case *protocol.GpadlTeardown:
		s.saw("guest tore down a GPADL")
	case *protocol.Unload:
		s.saw("guest unloaded")
	case *protocol.InitiateContact:
		s.saw("guest (re)negotiated")
	}
	return true
}

// learnOpen passes an open's events up, keeping the guest's, and maps
// the ring the guest will read.
func (s *session) learnOpen(m *protocol.OpenChannel) bool {
	id := m.ChannelID
	ch := &openChan{id: id}
	var evs [2]*transport.Event
	for i, dir := range []transport.Direction{transport.ToHost, transport.ToGuest} {
		e, err := s.guest.TakeEvent(id, dir)
		if err != nil {
			continue // the guest sent none: the real host will refuse the open
		}
		s.mu.Lock()
		s.events = append(s.events, e)
		s.mu.Unlock()
		evs[i] = e
	}
	ch.toGuest = evs[1]
	if !s.relayEvents(id, evs[0], evs[1]) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch.stream = s.offers[id].Flags&protocol.OfferFlagTLNPIProvider != 0
	pfns := s.gpadls[m.RingGpadlID]
	off := int(m.DownstreamRingPageOffset)
	if s.mem != nil && off > 0 && off+2 <= len(pfns) {
		if mp, err := s.mem.MapPages(pfns[off:], guestmem.ReadWrite); err == nil {
			s.mappings = append(s.mappings, mp)
			ch.in = mp.Bytes()
		}
	}
	s.chans[id] = ch
	s.opening[id] = true
	return true
}

// down passes the real host's messages to the guest, through the armed
// rewrites.
func (s *session) down() {
	buf := make([]byte, transport.MaxMessageSize)
	for {
		n, err := s.host.Recv(s.ctx, buf)
		if err != nil {
			s.finish(s.endOf(err, endHost))
			return
		}
		// A servicing-like pause holds the gate: wait it out.
		s.gate.RLock()
		//lint:ignore SA2001 waiting out the pause is the point
		s.gate.RUnlock()
		s.mu.Lock()
		muted := s.muted
		s.mu.Unlock()
		if muted {
			continue
		}
		msg := append([]byte(nil), buf[:n]...)
		m, derr := protocol.Decode(msg)
		if derr != nil {
			if !s.sendGuest(msg) {
				return
			}
			continue
		}
		s.learnDown(m)
		for _, out := range s.downHooks(m, msg) {
			if out.delay > 0 && !s.sleep(out.delay) {
				return
			}
			if !s.sendGuest(out.msg) {
				return
			}
		}
	}
}

// learnDown keeps what the relay needs of the host's message.
func (s *session) learnDown(m protocol.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch m := m.(type) {
	case *protocol.OfferChannel:
		s.offers[m.ChannelID] = *m
	case *protocol.RescindChannelOffer:
		delete(s.offers, m.ChannelID)
	case *protocol.OpenChannelResult:
		delete(s.opening, m.ChannelID)
		if m.Status != 0 {
			delete(s.chans, m.ChannelID)
		}
	}
}

// inject misbehaves unasked, now and then, while the session lasts.
func (s *session) inject() {
	kinds := make([]string, 0, len(injectKinds))
	for _, k := range injectKinds {
		if s.armed[k] {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) == 0 {
		return
	}
	rng := s.injRng
	for {
		if !s.sleep(minInject + time.Duration(rng.Int64N(int64(maxInject-minInject)))) {
			return
		}
		s.gate.RLock()
		ok := s.injectOne(kinds[rng.IntN(len(kinds))], rng)
		s.gate.RUnlock()
		if !ok {
			return
		}
	}
}

// pumpRng is a PCG for one more pump, seeded from the session's.
func (s *session) pumpRng() *rand.Rand {
	s.mu.Lock()
	defer s.mu.Unlock()
	return rand.New(rand.NewPCG(s.pumpSeed.Uint64(), s.pumpSeed.Uint64()))
}
