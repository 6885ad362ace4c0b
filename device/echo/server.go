package echo

import (
	"sync/atomic"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/protocol"
)

// InterfaceType identifies echo channels (a random GUID fixed for govmbus).
var InterfaceType = protocol.MustParseGUID("5e1b7c3a-9d42-4f6e-8a15-2c07e9b4d831")

// InterfaceInstance is the instance offered by default.
var InterfaceInstance = protocol.MustParseGUID("00000000-0000-0000-0000-000000000001")

// Defaults of ServerConfig and ClientConfig.
const (
	// DefaultMaxPayload is the largest payload echoed: larger packets are
	// malformed to the channel layer, which stops the channel's queue.
	DefaultMaxPayload = 64 << 10
	// DefaultMaxPacketCount is how many incoming packets the VSP holds at
	// once; it also bounds the answers waiting for ring space, since a
	// packet is completed only once its answer is in the ring.
	DefaultMaxPacketCount = 256
)

// ServerConfig configures a Server. The zero value offers
// InterfaceType/InterfaceInstance with the defaults above.
type ServerConfig struct {
	Instance       protocol.GUID // zero: InterfaceInstance
	MaxPayload     int           // zero: DefaultMaxPayload
	MaxPacketCount int           // zero: DefaultMaxPacketCount
}

// Server is the echo VSP for one guest: a started server channel.
type Server struct {
	ch *channel.Channel
	// answers are the answer packets, one per incoming packet object,
	// owned by the receive goroutine (process).
	answers outRing
	count   int // ServerConfig.MaxPacketCount
	// limit bounds answers: count, plus the answers let go of by
	// suspend (or restored) that may still wait to be sent.
	limit int
	// rx is the guest's receive buffer once it announced one: answers
	// go through it, staged (rxbuffer.go) and sent as the ranges of one
	// transfer-page packet when a batch ends.
	rx        atomic.Pointer[channel.TransferPageSet]
	stage     stage
	burst     *burst // nil until the first small answer
	fallbacks atomic.Uint64
}

// NewServer offers an echo channel to guest g and starts it. Packets flow
// once the guest opens it. Close rescinds it.
func NewServer(g *host.Guest, cfg ServerConfig) (*Server, error) {
	return newServer(g, cfg, nil, false, true)
}

// newServer builds a server; with restore it restores the channel from
// chunks before enabling it, which re-attaches it instead of offering it.
func newServer(g *host.Guest, cfg ServerConfig, chunks [][]byte, restore bool, start bool) (*Server, error) {
	if cfg.Instance.IsZero() {
		cfg.Instance = InterfaceInstance
	}
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	if cfg.MaxPacketCount <= 0 {
		cfg.MaxPacketCount = DefaultMaxPacketCount
	}
	s := &Server{ch: channel.NewServer(), count: cfg.MaxPacketCount}
	err := firstErr(
		s.ch.SetGuest(g),
		s.ch.SetInterface(InterfaceType, cfg.Instance),
		s.ch.SetFriendlyName("echo"),
		s.ch.SetMaxPacketSize(cfg.MaxPayload),
		s.ch.SetMaxPacketCount(cfg.MaxPacketCount),
		s.ch.SetProcessPacketCallbacks(s.process, s.batchEnd),
		// process passes each payload on unread, inside the callback:
		// the bytes go from the guest's ring to the answer in one copy.
		s.ch.SetInPlacePayloads(true),
		s.ch.SetSavePacketCallbacks(nil, s.restorePacket),
		s.ch.SetStateCallbacks(channel.StateCallbacks{Suspend: s.suspend}),
	)
	if err == nil && restore {
		// Restored packets take their saved slots: the answers are
		// allocated after them.
		err = s.ch.RestoreChunks(chunks)
	}
	// One answer packet per incoming packet object: an incoming packet
	// is completed only when its answer is in the ring, so the channel's
	// pool bounds the answers and a free one is always there. Restored
	// answers (still to be sent) come on top. None is allocated now:
	// process adds them as the traffic needs them, which is seldom (an
	// answer goes out by TrySend unless the guest's ring is full), and a
	// servicing successor builds every server in its blackout.
	s.limit = cfg.MaxPacketCount + s.answers.len()
	if err == nil {
		err = s.ch.Enable()
	}
	if err == nil {
		// A restored channel brings its receive buffer back, mapped
		// again, with the ranges the guest still holds.
		if ts := s.ch.TransferPageSet(RxSetID); ts != nil {
			s.rx.Store(ts)
		}
	}
	if err == nil && start {
		err = s.ch.Start()
	}
	if err != nil {
		s.ch.Cleanup() //nolint:errcheck // the first error matters
		return nil, err
	}
	return s, nil
}

// Channel is the server channel, for state queries.
func (s *Server) Channel() *channel.Channel { return s.ch }

// Close rescinds the channel and waits until it is torn down. It is
// idempotent.
func (s *Server) Close() error { return s.ch.Cleanup() }

// process answers one packet, on the channel's receive goroutine.
func (s *Server) process(_ *channel.Channel, p *channel.Packet, payload []byte, flags channel.PacketFlags) {
	if flags&channel.PacketFlagExternalData != 0 {
		p.Complete(nil) // echo has nothing to do with guest buffers
		return
	}
	if p.CompletionRequested() {
		if gpadl, set, ok := parseAnnounce(payload); ok {
			s.takeAnnounce(p, gpadl, set)
			return
		}
		p.Complete(payload) // never fails: it queues when the ring is full
		return
	}
	if ts := s.rx.Load(); ts != nil {
		s.flushBurst() // answers from before the buffer go first
		if s.stageAnswer(ts, payload) {
			// The bytes are the server's own copy now: the packet is
			// done.
			p.Complete(nil)
			return
		}
	}
	if len(payload) <= burstMax && s.count >= 2 {
		// Small answers go in bursts (burst.go); the packet waits for
		// its answer's turn.
		s.burstAnswer(p, payload)
		return
	}
	s.flushBurst()
	if s.ch.TrySend(payload) == nil {
		// In the ring already: no answer packet needed.
		p.Complete(nil)
		return
	}
	s.answerLater(p, payload)
}

// answerLater answers p with an answer packet, which queues a copy of
// payload behind a full ring; p is completed once the answer is in the
// ring (answered).
func (s *Server) answerLater(p *channel.Packet, payload []byte) {
	a := s.answers.take()
	if a == nil && s.answers.len() < s.limit && s.addAnswer() == nil {
		a = s.answers.take()
	}
	if a == nil {
		// Cannot happen (one answer per packet object, within limit)
		// but for an allocation failure; drop rather than block the
		// receive goroutine.
		p.Complete(nil)
		return
	}
	a.in = p
	if err := a.send(payload); err != nil {
		// Too large for the guest's ring, or the channel is closing.
		a.in = nil
		p.Complete(nil)
	}
}

// addAnswer adds an idle answer packet to the pool, to be taken next. On
// the receive goroutine, or before it runs.
func (s *Server) addAnswer() error {
	op, err := s.ch.AllocatePacket()
	if err != nil {
		return err
	}
	op.SetCompletion(s.answered)
	s.answers.insert(newOutSlot(op))
	return nil
}

// answered runs when an answer is in the ring (or the channel closed):
// the incoming packet it answers is completed now, which frees its slot.
// It runs inside process's send, or, for an answer that waited for ring
// space, on the goroutine that wrote the channel's send queue out.
func (s *Server) answered(op *channel.OutPacket, _ channel.Status, _ []byte) {
	a := slotOf(op)
	p := a.in
	a.in = nil
	a.complete()
	if p != nil {
		p.Complete(nil)
	}
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
