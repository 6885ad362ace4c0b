package ic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/host"
)

// Errors of a server's requests.
var (
	// ErrBusy: MaxPending callers wait already.
	ErrBusy = errors.New("ic: too many requests waiting")
	// ErrClosed: the server closed, or the guest closed the channel.
	ErrClosed = errors.New("ic: channel closed")
	// ErrIncompatible: the guest has no version in common with the host.
	ErrIncompatible = errors.New("ic: no common version with the guest")
	// ErrNoAnswer: the guest did not answer within the reply timeout.
	ErrNoAnswer = errors.New("ic: the guest did not answer")
)

// Bounds of a server.
const (
	// MaxPending bounds the callers that wait for a server's one
	// outstanding request: the ones beyond get ErrBusy. With the request
	// on the wire, a guest makes a host hold at most MaxPending+1
	// requests per service channel.
	MaxPending = 16
	// DefaultReplyTimeout is how long a request stays outstanding
	// without an answer before the server gives up on it (the guest's
	// answer after that counts as unexpected).
	DefaultReplyTimeout = 30 * time.Second
	// maxPackets is the incoming packets a server holds: the guest only
	// answers, one request at a time.
	maxPackets = 8
)

// Config configures a server of any service.
type Config struct {
	Logger       *slog.Logger  // nil discards
	ReplyTimeout time.Duration // zero: DefaultReplyTimeout
}

// Status is what a server knows of its channel and the guest.
type Status struct {
	Service      string  `json:"service"`
	Open         bool    `json:"open"`
	Negotiated   bool    `json:"negotiated"`
	Incompatible bool    `json:"incompatible,omitempty"`
	Framework    Version `json:"-"`
	Message      Version `json:"-"`
	Versions     string  `json:"versions,omitempty"` // "framework/message"
	Pending      bool    `json:"pending"`            // a request outstanding
	Requests     uint64  `json:"requests"`           // sent, negotiation included
	Answers      uint64  `json:"answers"`            // matched to a request
	Unanswered   uint64  `json:"unanswered"`         // given up after the reply timeout
	Unexpected   uint64  `json:"unexpected"`         // answers to nothing asked, or malformed
}

// pending is the request on the wire. Its waiter is in this process only
// (a restored one has none).
type pending struct {
	typ     MsgType
	seq     uint64 // heartbeat: the sequence sent
	payload []byte // the request as sent (what a reply is checked against)
	waiter  chan reply
	timer   *time.Timer
	gen     uint64
}

type reply struct {
	m   *Message
	err error
}

// core is what every service's server shares: the channel, the
// negotiation, and the one request outstanding.
type core struct {
	svc   Service
	info  *serviceInfo
	ch    *channel.Channel
	log   *slog.Logger
	cfg   Config
	check func(p *pending, m *Message) error // the service's reply rule; nil accepts
	done  chan struct{}                      // closed by Close
	// token is held by whoever has the request on the wire: taking it
	// is the right to send.
	token chan struct{}

	mu           sync.Mutex
	negotiated   bool
	incompatible bool
	fw, msg      Version
	ready        chan struct{} // closed once negotiated; replaced on reset
	cur          *pending
	gen          uint64
	waiting      int
	open         bool
	st           Status
	extra        func() []byte // the service's own saved bytes (under mu)
	// restoreExtra takes them back, before the restore changes anything
	// of the core; an error refuses the state.
	restoreExtra func([]byte) error
	closeOnce    sync.Once
}

func newCore(svc Service, cfg Config) *core {
	if cfg.Logger == nil {
		cfg.Logger = discard
	}
	if cfg.ReplyTimeout <= 0 {
		cfg.ReplyTimeout = DefaultReplyTimeout
	}
	c := &core{svc: svc, info: &services[svc], cfg: cfg, log: cfg.Logger.With("ic", services[svc].name),
		done: make(chan struct{}), token: make(chan struct{}, 1), ready: make(chan struct{}), ch: channel.NewServer()}
	c.token <- struct{}{}
	return c
}

// start configures and enables the channel: restored from chunks when
// restore, started unless held.
func (c *core) start(g *host.Guest, chunks [][]byte, restore, start bool) error {
	err := errors.Join(
		c.ch.SetGuest(g),
		c.ch.SetInterface(c.info.typ, c.info.instance),
		c.ch.SetFriendlyName(c.info.name),
		c.ch.SetMaxPacketSize(c.info.maxPacket),
		c.ch.SetMaxPacketCount(maxPackets),
		c.ch.SetProcessPacketCallbacks(c.process, nil),
		c.ch.SetSavePacketCallbacks(nil, c.restorePacket),
		c.ch.Servicing().SetSaveStateCallbacks(c.saveState, c.restoreState),
		c.ch.SetStateCallbacks(channel.StateCallbacks{PostStarted: c.postStarted, Closed: c.closed}),
	)
	if err == nil && restore {
		err = c.ch.RestoreChunks(chunks)
	}
	if err == nil {
		err = c.ch.Enable()
	}
	if err == nil && start {
		err = c.ch.Start()
	}
	if err != nil {
		c.ch.Cleanup() //nolint:errcheck // the first error matters
		return err
	}
	return nil
}

// postStarted runs once packets flow: on a channel the guest just opened
// the host proposes versions (Hyper-V's order of things); a restored
// channel that negotiated already does not again.
func (c *core) postStarted(*channel.Channel) {
	c.mu.Lock()
	c.open = true
	need := !c.negotiated && !c.incompatible && c.cur == nil
	c.mu.Unlock()
	if !need {
		return
	}
	select {
	case <-c.token:
	default:
		return // a request is on the wire already
	}
	if _, err := c.send(MsgNegotiate, 0, c.offer(), nil); err != nil {
		c.token <- struct{}{}
		c.log.Warn("negotiate request not sent", "err", err)
	}
}

// closed runs when the guest closed the channel (or Close): whatever was
// asked goes unanswered, and a guest that opens again negotiates again.
func (c *core) closed(*channel.Channel) {
	c.mu.Lock()
	c.open = false
	p := c.takeLocked()
	c.negotiated, c.incompatible = false, false
	select {
	case <-c.ready:
		c.ready = make(chan struct{})
	default:
	}
	c.mu.Unlock()
	c.finish(p, reply{err: ErrClosed})
}

func (c *core) offer() []byte {
	n := Negotiate{Frameworks: hostFrameworks, Messages: c.info.hostMessages}
	return n.Marshal()
}

// send puts a request on the wire; the caller holds the token. waiter
// receives the answer (nil: nobody waits in this process).
func (c *core) send(typ MsgType, seq uint64, body []byte, waiter chan reply) (*pending, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := Header{Type: typ, Flags: FlagsRequest}
	if typ != MsgNegotiate {
		h.Framework, h.MsgVersion = c.fw, c.msg
	}
	payload := Build(h, body)
	op, err := c.ch.AllocatePacket()
	if err != nil {
		return nil, err
	}
	// Under mu: a save (whose state callback takes mu) sees the request
	// pending exactly when its packet is in the ring or the send queue.
	if err := op.Send(payload, 0); err != nil {
		op.Free()
		return nil, err
	}
	c.gen++
	p := &pending{typ: typ, seq: seq, payload: payload, waiter: waiter, gen: c.gen}
	c.arm(p)
	c.cur = p
	c.st.Requests = saturating(c.st.Requests)
	return p, nil
}

// arm starts p's reply timeout. Must hold mu.
func (c *core) arm(p *pending) {
	gen := p.gen
	p.timer = time.AfterFunc(c.cfg.ReplyTimeout, func() {
		c.mu.Lock()
		if c.cur == nil || c.cur.gen != gen {
			c.mu.Unlock()
			return
		}
		p := c.takeLocked()
		c.st.Unanswered = saturating(c.st.Unanswered)
		c.mu.Unlock()
		c.log.Warn("no answer", "request", p.typ.String(), "after", c.cfg.ReplyTimeout)
		c.finish(p, reply{err: ErrNoAnswer})
	})
}

// takeLocked clears the outstanding request and returns it. Must hold mu.
func (c *core) takeLocked() *pending {
	p := c.cur
	c.cur = nil
	if p != nil && p.timer != nil {
		p.timer.Stop()
	}
	return p
}

// finish hands p's outcome to its waiter and gives the token back.
func (c *core) finish(p *pending, r reply) {
	if p == nil {
		return
	}
	if p.waiter != nil {
		p.waiter <- r // buffered: never blocks
	}
	c.token <- struct{}{}
}

// process reads the guest's answers, on the receive goroutine.
func (c *core) process(_ *channel.Channel, pk *channel.Packet, payload []byte, _ channel.PacketFlags) {
	defer pk.Complete(nil)
	m, err := Parse(payload)
	if err == nil && m.Header.Flags&FlagResponse == 0 {
		err = fmt.Errorf("%w: flags %#x, not a response", ErrMalformed, m.Header.Flags)
	}
	c.mu.Lock()
	p := c.cur
	if err == nil && (p == nil || p.typ != m.Header.Type) {
		err = fmt.Errorf("an answer of type %v to nothing asked", m.Header.Type)
	}
	if err == nil && p.typ == MsgNegotiate {
		err = c.negotiatedLocked(m)
	} else if err == nil && c.check != nil {
		err = c.check(p, m)
	}
	if err != nil {
		c.st.Unexpected = saturating(c.st.Unexpected)
		c.mu.Unlock()
		c.log.Warn("guest message dropped", "err", err)
		return
	}
	c.takeLocked()
	c.st.Answers = saturating(c.st.Answers)
	c.mu.Unlock()
	c.finish(p, reply{m: m})
}

// negotiatedLocked takes the guest's choice. Must hold mu.
func (c *core) negotiatedLocked(m *Message) error {
	fw, msg, ok, err := Chosen(m.Body)
	if err != nil {
		return err
	}
	if ok && (!containsVersion(hostFrameworks, fw) || !containsVersion(c.info.hostMessages, msg)) {
		return fmt.Errorf("the guest chose %v/%v, which the host did not offer", fw, msg)
	}
	if !ok {
		// The channel stays open: Negotiate may try again (after the
		// guest was updated, say).
		c.incompatible = true
		c.log.Error("no common version with the guest; the service is unavailable until Negotiate succeeds",
			"frameworks", fmt.Sprint(hostFrameworks), "messages", fmt.Sprint(c.info.hostMessages), "status", StatusName(m.Header.Status))
		return nil
	}
	c.negotiated, c.incompatible, c.fw, c.msg = true, false, fw, msg
	close(c.ready)
	c.log.Info("negotiated", "framework", fw.String(), "message", msg.String())
	return nil
}

func containsVersion(vs []Version, v Version) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// request sends one request once the channel negotiated and nothing else
// is on the wire, and waits for the guest's answer, ctx, the reply
// timeout or the channel's end.
func (c *core) request(ctx context.Context, typ MsgType, seq uint64, body []byte) (*Message, error) {
	c.mu.Lock()
	if c.waiting >= MaxPending {
		c.mu.Unlock()
		return nil, ErrBusy
	}
	c.waiting++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.waiting--
		c.mu.Unlock()
	}()
	for {
		c.mu.Lock()
		ready, incompatible := c.ready, c.incompatible
		c.mu.Unlock()
		if incompatible && typ != MsgNegotiate {
			return nil, ErrIncompatible
		}
		if typ != MsgNegotiate {
			select {
			case <-ready:
			case <-ctx.Done():
				return nil, fmt.Errorf("ic %s: waiting for the negotiation: %w", c.info.name, ctx.Err())
			case <-c.done:
				return nil, ErrClosed
			}
		}
		select {
		case <-c.token:
		case <-ctx.Done():
			return nil, fmt.Errorf("ic %s: waiting for the request before: %w", c.info.name, ctx.Err())
		case <-c.done:
			return nil, ErrClosed
		}
		c.mu.Lock()
		ok := c.negotiated || typ == MsgNegotiate
		c.mu.Unlock()
		if ok {
			break
		}
		c.token <- struct{}{} // the channel closed meanwhile: wait again
	}
	w := make(chan reply, 1)
	if _, err := c.send(typ, seq, body, w); err != nil {
		c.token <- struct{}{}
		return nil, err
	}
	select {
	case r := <-w:
		return r.m, r.err
	case <-ctx.Done():
		// The request stays on the wire until answered or timed out;
		// its answer then goes to nobody.
		c.mu.Lock()
		if c.cur != nil && c.cur.waiter == w {
			c.cur.waiter = nil
		}
		c.mu.Unlock()
		return nil, fmt.Errorf("ic %s: waiting for the guest's answer: %w", c.info.name, ctx.Err())
	}
}

// Negotiate proposes versions again, for a guest that had none in common
// (or to learn the outcome of the first proposal): it returns once the
// guest answered. A negotiated channel returns at once.
func (c *core) Negotiate(ctx context.Context) error {
	c.mu.Lock()
	if c.negotiated {
		c.mu.Unlock()
		return nil
	}
	ready := c.ready
	c.mu.Unlock()
	select {
	case <-ready:
		return nil
	default:
	}
	if _, err := c.request(ctx, MsgNegotiate, 0, c.offer()); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.negotiated {
		return ErrIncompatible
	}
	return nil
}

// Status reports the channel's state and counters.
func (c *core) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.st
	s.Service, s.Open, s.Negotiated, s.Incompatible, s.Pending = c.info.name, c.open, c.negotiated, c.incompatible, c.cur != nil
	s.Framework, s.Message = c.fw, c.msg
	if c.negotiated {
		s.Versions = c.fw.String() + "/" + c.msg.String()
	}
	return s
}

// Channel is the server channel, for state queries.
func (c *core) Channel() *channel.Channel { return c.ch }

// Close rescinds the channel and waits until it is torn down; waiting
// requests end with ErrClosed. It is idempotent.
func (c *core) Close() error {
	c.closeOnce.Do(func() { close(c.done) })
	err := c.ch.Cleanup()
	c.mu.Lock()
	p := c.takeLocked()
	c.mu.Unlock()
	if p != nil && p.waiter != nil {
		p.waiter <- reply{err: ErrClosed}
	}
	return err
}
