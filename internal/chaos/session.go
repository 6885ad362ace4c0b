package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/ring"
	"github.com/govmbus/govmbus/transport"
)

// session is one connection of the hostile guest: its transport, its
// memory, what it learnt from the host, and the channels it opened.
// Everything but the receiver goroutine runs on the run's goroutine.
type session struct {
	ctx context.Context
	rng *rand.Rand
	rep *Report
	c   *transport.Conn
	mem *guestmem.Memory
	// client is set for a session whose legitimate steps go through
	// package guest; it owns c and mem.
	client *guest.Client

	// raw: this session reads the host's messages itself (receive);
	// a client session leaves them to package guest.
	raw  bool
	msgs chan protocol.Message // the host's messages, from receive
	done chan struct{}         // closed when the connection ended
	// gate is held while the session pretends not to read its socket.
	gate sync.Mutex

	version   protocol.Version
	offers    []*protocol.OfferChannel
	open      map[uint32]*rings // by channel id
	gpadls    []gpadlRef        // created and not torn down
	nextPFN   uint64
	nextGpadl uint32
}

// rings is a channel the session opened: both ring regions in its
// memory and the events it handed over.
type rings struct {
	id       uint32
	gpadl    uint32
	out, in  []byte // guest→host (the host reads it), host→guest
	toHost   *transport.Event
	fromHost *transport.Event
}

type gpadlRef struct{ channel, id uint32 }

// ownSendTimeout keeps the session's own sends from blocking on a host
// that stopped reading (because it is blocked sending to us).
const ownSendTimeout = 500 * time.Millisecond

// dial connects, hands over memory and, for a raw session, starts the
// receiver.
func dial(ctx context.Context, cfg Config, rng *rand.Rand, rep *Report, raw bool) (*session, error) {
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := transport.Dial(dctx, cfg.Socket)
	if err != nil {
		return nil, err
	}
	mem, err := guestmem.New(cfg.MemorySize)
	if err != nil {
		c.Close()
		return nil, err
	}
	if err := c.SendMemory(mem); err != nil {
		mem.Close()
		c.Close()
		return nil, err
	}
	c.SetSendTimeout(ownSendTimeout)
	rep.Sessions++
	s := &session{
		ctx: ctx, rng: rng, rep: rep, c: c, mem: mem, raw: raw,
		msgs:      make(chan protocol.Message, 4096),
		done:      make(chan struct{}),
		open:      make(map[uint32]*rings),
		nextGpadl: 0xC0000 + uint32(rng.IntN(1<<16)),
	}
	if raw {
		go s.receive()
	}
	return s, nil
}

// receive hands the host's messages to the session, unless the gate is
// held. Messages beyond the buffer are dropped: nobody waits for them.
func (s *session) receive() {
	defer close(s.done)
	buf := make([]byte, transport.MaxMessageSize)
	for {
		s.gate.Lock()
		//lint:ignore SA2001 waiting for the gate is the point
		s.gate.Unlock()
		n, err := s.c.Recv(context.Background(), buf)
		if err != nil {
			return
		}
		m, err := protocol.Decode(buf[:n])
		if err != nil {
			continue
		}
		select {
		case s.msgs <- m:
		default:
		}
	}
}

// close drops the connection with whatever is open, as a guest that
// leaves mid-transaction does.
func (s *session) close() {
	if s.client != nil {
		s.client.Close()
		<-s.done
		return
	}
	s.c.Close()
	if s.raw {
		<-s.done
	}
	for _, r := range s.open {
		r.closeEvents()
	}
	s.mem.Close()
}

// gone reports whether the host ended the connection.
func (s *session) gone() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// send sends m and returns "" or the outcome that ends the action.
func (s *session) send(m protocol.Message) string {
	return s.sendBytes(protocol.Marshal(m))
}

func (s *session) sendBytes(b []byte) string {
	err := s.c.Send(b)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, transport.ErrSendTimeout):
		return outNotSent
	case errors.Is(err, transport.ErrPeerClosed), errors.Is(err, transport.ErrClosed):
		return outDisconnected
	}
	return "send failed: " + err.Error()
}

// await waits for a message match accepts, handling the host's other
// messages on the way (rescinds). It returns nil and the outcome if none
// came.
func (s *session) await(match func(protocol.Message) bool, d time.Duration) (protocol.Message, string) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case m := <-s.msgs:
			if match(m) {
				return m, ""
			}
			s.observe(m)
		case <-s.done:
			return nil, outDisconnected
		case <-t.C:
			return nil, outNoAnswer
		case <-s.ctx.Done():
			return nil, outNoAnswer
		}
	}
}

// quiet waits a moment for an answer to something the host should
// ignore.
func (s *session) quiet() string {
	m, out := s.await(func(m protocol.Message) bool {
		switch m.(type) {
		case *protocol.RescindChannelOffer, *protocol.OfferChannel:
			return false
		}
		return true
	}, quietWait)
	switch {
	case m != nil:
		return fmt.Sprintf("%s with %v", outAnswered, m.Type())
	case out == outNoAnswer:
		return outIgnored
	}
	return out
}

// observe handles a message nobody waited for.
func (s *session) observe(m protocol.Message) {
	switch m := m.(type) {
	case *protocol.RescindChannelOffer:
		s.rep.add("(host) rescind", outRescinded)
		s.offers = deleteOffer(s.offers, m.ChannelID)
		// Half the time the id is released; the other half never, which
		// the host must survive too.
		if s.rng.IntN(2) == 0 {
			s.send(&protocol.RelIDReleased{ChannelID: m.ChannelID})
		}
	case *protocol.OfferChannel:
		s.offers = append(deleteOffer(s.offers, m.ChannelID), m)
	}
}

func deleteOffer(offers []*protocol.OfferChannel, id uint32) []*protocol.OfferChannel {
	out := offers[:0]
	for _, o := range offers {
		if o.ChannelID != id {
			out = append(out, o)
		}
	}
	return out
}

// contact negotiates a version (mostly the newest) and asks for offers.
func (s *session) contact() string {
	vs := protocol.Versions()
	v := vs[0]
	if s.rng.IntN(4) == 0 {
		v = vs[s.rng.IntN(len(vs))]
	}
	ic := &protocol.InitiateContact{VersionRequested: v}
	if v >= protocol.VersionWin10RS31 {
		ic.MessageSINT = protocol.MessageSINT
	}
	if out := s.send(ic); out != "" {
		return out
	}
	m, out := s.await(func(m protocol.Message) bool { _, ok := m.(*protocol.VersionResponse); return ok }, answerWait)
	if m == nil {
		return out
	}
	if !m.(*protocol.VersionResponse).VersionSupported {
		return "version refused"
	}
	s.version = v
	return s.requestOffers()
}

func (s *session) requestOffers() string {
	if out := s.send(&protocol.RequestOffers{}); out != "" {
		return out
	}
	s.offers = nil
	for {
		m, out := s.await(func(m protocol.Message) bool {
			switch m.(type) {
			case *protocol.OfferChannel, *protocol.AllOffersDelivered:
				return true
			}
			return false
		}, answerWait)
		switch m := m.(type) {
		case nil:
			return out
		case *protocol.OfferChannel:
			s.offers = append(s.offers, m)
		case *protocol.AllOffersDelivered:
			return ""
		}
	}
}

// channel picks an offered channel id, or a random one if none.
func (s *session) channel() uint32 {
	if len(s.offers) == 0 {
		return uint32(1 + s.rng.IntN(4))
	}
	return s.offers[s.rng.IntN(len(s.offers))].ChannelID
}

// pages takes n contiguous pages of guest memory, wrapping around: pages
// the host may still hold are reused, as a hostile guest would.
func (s *session) pages(n int) uint64 {
	if s.nextPFN+uint64(n) > s.mem.Pages() {
		s.nextPFN = 0
	}
	pfn := s.nextPFN
	s.nextPFN += uint64(n)
	return pfn
}

func pageRange(pfn uint64, n int) gpa.Range {
	r := gpa.Range{ByteCount: uint32(n) * guestmem.PageSize}
	for i := range n {
		r.PFNs = append(r.PFNs, pfn+uint64(i))
	}
	return r
}

func (s *session) gpadlID() uint32 {
	s.nextGpadl++
	return s.nextGpadl
}

// createGpadl sends a well-formed GPADL of ranges and returns its status
// (ok false: no answer, out says why).
func (s *session) createGpadl(ch, id uint32, ranges []gpa.Range) (status uint32, ok bool, out string) {
	msgs, err := protocol.NewGpadlMessages(ch, id, ranges)
	if err != nil {
		return 0, false, "not sent: " + err.Error()
	}
	for _, m := range msgs {
		if out := s.send(m); out != "" {
			return 0, false, out
		}
	}
	return s.awaitCreated(id)
}

func (s *session) awaitCreated(id uint32) (status uint32, ok bool, out string) {
	return s.awaitCreatedWithin(id, answerWait)
}

func (s *session) awaitCreatedWithin(id uint32, d time.Duration) (status uint32, ok bool, out string) {
	m, out := s.await(func(m protocol.Message) bool {
		c, ok := m.(*protocol.GpadlCreated)
		return ok && c.GpadlID == id
	}, d)
	if m == nil {
		return 0, false, out
	}
	return m.(*protocol.GpadlCreated).Status, true, ""
}

// gpadlOutcome names a GpadlCreated status.
func gpadlOutcome(status uint32) string {
	if status == 0 {
		return outCreated
	}
	return fmt.Sprintf("%s status %#x", outGpadlFailed, status)
}

// openSpec is how openChannel builds an open, well-formed or not.
type openSpec struct {
	outPages, inPages int
	offset            uint32 // DownstreamRingPageOffset; 0 means outPages
	gpadl             uint32 // a ring GPADL to use; 0 makes one
	noEvents          bool
	corruptRings      bool
}

// openChannel opens channel ch as spec says and returns the rings if the
// host accepted, and the outcome.
func (s *session) openChannel(ch uint32, spec openSpec) (*rings, string) {
	if spec.outPages == 0 {
		spec.outPages = 2 + s.rng.IntN(3)
	}
	if spec.inPages == 0 {
		spec.inPages = 2 + s.rng.IntN(3)
	}
	n := spec.outPages + spec.inPages
	pfn := s.pages(n)
	region := s.mem.Bytes()[pfn*guestmem.PageSize : (pfn+uint64(n))*guestmem.PageSize]
	r := &rings{id: ch, out: region[:spec.outPages*guestmem.PageSize], in: region[spec.outPages*guestmem.PageSize:]}
	clear(region[:ring.ControlSize])
	clear(r.in[:ring.ControlSize])
	ring.Format(r.out, true) //nolint:errcheck // the sizes are whole pages
	ring.Format(r.in, true)  //nolint:errcheck
	if spec.corruptRings {
		s.scribble(r.out[:64])
		s.scribble(r.in[:64])
	}
	r.gpadl = spec.gpadl
	if r.gpadl == 0 {
		r.gpadl = s.gpadlID()
		st, ok, out := s.createGpadl(ch, r.gpadl, []gpa.Range{pageRange(pfn, n)})
		if !ok {
			return nil, out
		}
		if st != 0 {
			return nil, "ring " + gpadlOutcome(st)
		}
		s.gpadls = append(s.gpadls, gpadlRef{ch, r.gpadl})
	}
	if !spec.noEvents {
		var err error
		if r.toHost, err = transport.NewEvent(); err != nil {
			return nil, "no event: " + err.Error()
		}
		if r.fromHost, err = transport.NewEvent(); err != nil {
			r.toHost.Close()
			return nil, "no event: " + err.Error()
		}
		e1 := s.c.SendEvent(ch, transport.ToHost, r.toHost)
		e2 := s.c.SendEvent(ch, transport.ToGuest, r.fromHost)
		if e1 != nil || e2 != nil {
			r.toHost.Close()
			r.fromHost.Close()
			return nil, outDisconnected
		}
	}
	off := spec.offset
	if off == 0 {
		off = uint32(spec.outPages)
	}
	if out := s.send(&protocol.OpenChannel{ChannelID: ch, OpenID: ch, RingGpadlID: r.gpadl, DownstreamRingPageOffset: off}); out != "" {
		r.closeEvents()
		return nil, out
	}
	m, out := s.await(func(m protocol.Message) bool {
		res, ok := m.(*protocol.OpenChannelResult)
		return ok && res.ChannelID == ch
	}, answerWait)
	if m == nil {
		r.closeEvents()
		return nil, out
	}
	if st := m.(*protocol.OpenChannelResult).Status; st != 0 {
		r.closeEvents()
		return nil, fmt.Sprintf("%s status %#x", outOpenFailed, st)
	}
	if old := s.open[ch]; old != nil {
		old.closeEvents()
	}
	out = outOpened
	if spec.noEvents {
		// The host took events an earlier open handed over and it
		// refused before taking them (docs/TRANSPORT.md: untaken events
		// stay until replaced). Ours are closed: signals to these go
		// nowhere.
		var err1, err2 error
		r.toHost, err1 = transport.NewEvent()
		r.fromHost, err2 = transport.NewEvent()
		if err1 != nil || err2 != nil {
			r.closeEvents()
			return nil, outOpened + ", no events here"
		}
		out = outOpened + " with the events of an earlier refused open"
	}
	s.open[ch] = r
	return r, out
}

func (r *rings) closeEvents() {
	if r.toHost != nil {
		r.toHost.Close()
	}
	if r.fromHost != nil {
		r.fromHost.Close()
	}
}

// scribble fills b with random bytes.
func (s *session) scribble(b []byte) {
	for i := range b {
		b[i] = byte(s.rng.Uint32())
	}
}

// anyOpen returns an open channel, opening one if there is none.
func (s *session) anyOpen() (*rings, string) {
	for _, id := range sortedKeys(s.open) {
		if s.rng.IntN(2) == 0 || len(s.open) == 1 {
			return s.open[id], ""
		}
	}
	if len(s.offers) == 0 {
		return nil, "no channel offered"
	}
	for range 3 {
		ch := s.channel()
		if s.open[ch] != nil {
			return s.open[ch], ""
		}
		r, out := s.openChannel(ch, openSpec{})
		if r != nil {
			return r, ""
		}
		if out == outDisconnected {
			return nil, out
		}
	}
	return nil, "could not open a channel"
}
