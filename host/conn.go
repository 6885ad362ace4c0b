package host

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/govmbus/govmbus/capture"
	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/transport"
)

// errTooManyBad disconnects a guest that sent more than Limits.MaxBadMessages
// messages the host had to drop.
var errTooManyBad = errors.New("host: too many bad messages from guest")

// errNotReading disconnects a guest that left no room in its control
// socket for Limits.SendTimeout.
var errNotReading = errors.New("host: guest does not read its messages")

// errNoRelease disconnects a guest that did not answer a rescind with
// RelIdReleased within Limits.ReleaseTimeout.
var errNoRelease = errors.New("host: guest did not release a rescinded channel")

// guestConn is the host's side of one guest: its negotiation state, its
// channels and its GPADLs. One goroutine (run) handles the guest's messages
// in order; Shutdown rescinds from another, so the state is under mu.
//
// The connection's state machine:
//
//	awaiting contact ──InitiateContact, known version──► connected ──RequestOffers──► offered
//	      ▲   (unknown version: VersionResponse "not supported", stay)        │
//	      └────────────────────────── Unload → UnloadComplete ◄───────────────┘
//	(transport error, peer gone, too many bad messages, host Close: disconnected, from any state)
type guestConn struct {
	h   *Host
	c   *transport.Conn
	id  uint64
	log *slog.Logger

	done     chan struct{} // closed when run has cleaned up
	released chan struct{} // closed after a shutdown once every rescinded id is released

	mu           sync.Mutex
	contacted    bool
	version      protocol.Version
	features     protocol.FeatureFlags
	offersSent   bool
	shuttingDown bool
	releasedOnce bool
	mem          *guestmem.Memory
	chans        []chanState // by channel id - 1: the host's offers, then Guest.Offer's
	guest        *Guest
	greet        bool // OnGuest is due once handle returns (run's goroutine only)
	greeted      bool
	// connects are the guest's TlConnectRequests waiting for their
	// channel to open (tlconnect.go); dueConnect those OnConnect has
	// not seen yet (run's goroutine calls it once handle returns).
	connects   map[tlKey]time.Time
	dueConnect []protocol.TLConnectRequest
	cleanedUp  bool
	gpadls     *gpadlSet
	bad        int
	// releaseTimer fires when the oldest unanswered rescind is
	// Limits.ReleaseTimeout old (checkReleases); releaseArmed says it is
	// running.
	releaseTimer *time.Timer
	releaseArmed bool

	// kickMu guards kicked: why the host disconnected the guest on its
	// own (a send that timed out, a rescind not answered), for run to
	// report. It is separate from mu because a send that times out may
	// be running under mu or not.
	kickMu sync.Mutex
	kicked error

	// Servicing (pause.go, save.go, restore.go).
	pause    pauser
	detached bool // saved for a successor: send nothing to the guest any more
	// unresumed: restored, its control plane not started yet (Resume):
	// nothing reads the guest's messages until then.
	unresumed bool
	// pendingEvents are events the guest handed over for channels not
	// open yet, taken from the transport at a save (restored ones too):
	// tryOpen falls back to them.
	pendingEvents map[eventKey]*transport.Event
}

// A channel's state for one guest:
//
//	offered ──OpenChannel ok──► open ──CloseChannel──► offered
//	   │                          │
//	   └──────── rescind ─────────┴──► rescinded ──RelIdReleased──► released (gone)
//
// An entry made by Guest.Offer (dynamic) is removed when its id is
// released, when the guest disconnects, or when it is rescinded before the
// guest asked for offers; the id may then be reused.
type chanState struct {
	present   bool // an offer lives at this id
	spec      OfferSpec
	dev       Device
	connID    uint32
	dynamic   *Offered // set for Guest.Offer's entries
	open      *openChannel
	rescinded bool
	// rescindedAt is when this host sent the rescind (or restored it
	// from a save, which does not carry the time), for
	// Limits.ReleaseTimeout.
	rescindedAt time.Time
	released    bool
	// waiting: restored from a saved state, for a server channel to
	// re-attach (Guest.Reattach); dev is a waitingDevice until then.
	waiting bool
}

func newGuestConn(h *Host, c *transport.Conn, id uint64) *guestConn {
	gc := &guestConn{
		h:        h,
		c:        c,
		id:       id,
		log:      h.log.With("guest", id),
		done:     make(chan struct{}),
		released: make(chan struct{}),
		chans:    make([]chanState, len(h.offers)),
	}
	for i := range h.offers {
		o := &h.offers[i]
		gc.chans[i] = chanState{present: true, spec: o.spec, dev: o.dev, connID: o.connID}
	}
	gc.guest = &Guest{gc: gc}
	gc.pause.init()
	c.SetSendTimeout(h.limits.SendTimeout)
	gc.gpadls = newGpadlSet(h.limits, func(gpadlID uint32) {
		gc.send(&protocol.GpadlTorndown{GpadlID: gpadlID})
	})
	return gc
}

// run receives and handles the guest's messages until the connection ends,
// then releases everything the guest held.
func (gc *guestConn) run() (err error) {
	gc.log.Info("guest connected")
	defer func() {
		gc.cleanup()
		gc.c.Close()
		close(gc.done)
		gc.log.Info("guest disconnected", "reason", errString(err))
	}()
	gc.mu.Lock()
	contacted := gc.contacted // a restored guest negotiated before
	gc.mu.Unlock()
	if !contacted {
		timeout := gc.h.limits.ContactTimeout
		t := time.AfterFunc(timeout, func() {
			gc.mu.Lock()
			ok := gc.contacted
			gc.mu.Unlock()
			if !ok {
				gc.disconnect(fmt.Errorf("no version negotiated within %v of connecting", timeout))
			}
		})
		defer t.Stop()
	}
	buf := make([]byte, transport.MaxMessageSize)
	for {
		ctx := gc.pause.context()
		n, err := gc.c.Recv(ctx, buf)
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				// Paused for a save: park between two messages.
				if !gc.pause.park() {
					return ErrClosed
				}
				if err := gc.kickReason(); err != nil {
					// Disconnected while parked (see disconnect).
					return err
				}
				continue
			}
			if errors.Is(err, transport.ErrPeerClosed) {
				return nil
			}
			if errors.Is(err, transport.ErrClosed) {
				if err := gc.kickReason(); err != nil {
					return err
				}
				return ErrClosed
			}
			return err
		}
		if w := gc.h.capture.Load(); w != nil {
			w.Control(gc.id, capture.In, buf[:n])
		}
		gc.mu.Lock()
		err = gc.handle(buf[:n])
		gc.mu.Unlock()
		if err != nil {
			return err
		}
		if gc.greet {
			gc.greet = false
			gc.h.onGuest(gc.guest)
		}
		if len(gc.dueConnect) > 0 {
			gc.runConnects()
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "guest closed the connection"
	}
	return err.Error()
}

// cleanup closes the guest's open channels and drops its GPADLs and memory.
func (gc *guestConn) cleanup() {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	gc.cleanedUp = true
	if gc.releaseTimer != nil {
		gc.releaseTimer.Stop()
	}
	gc.resetLocked("disconnect")
	for k, e := range gc.pendingEvents {
		e.Close()
		delete(gc.pendingEvents, k)
	}
	for i := range gc.chans {
		if gc.chans[i].dynamic != nil {
			gc.removeDynamicLocked(i)
		}
	}
	gc.gpadls.mu.Lock()
	gc.gpadls.mem = nil
	gc.gpadls.mu.Unlock()
	if gc.mem != nil {
		gc.mem.Close()
		gc.mem = nil
	}
	gc.markReleasedLocked()
}

// resetLocked closes every open channel and forgets every GPADL and channel
// state: what Unload and a disconnect both do. Offers stay (they are sent
// again at the next RequestOffers), except dynamic ones that were being
// rescinded: those are gone. Must hold mu.
func (gc *guestConn) resetLocked(why string) {
	for i := range gc.chans {
		cs := &gc.chans[i]
		if cs.open != nil {
			gc.closeChannelLocked(i, why)
		}
		if cs.dynamic != nil && cs.rescinded {
			gc.removeDynamicLocked(i)
			continue
		}
		cs.open, cs.rescinded, cs.released = nil, false, false
	}
	gc.gpadls.mu.Lock()
	clear(gc.gpadls.byID)
	gc.gpadls.pages = 0
	gc.gpadls.mu.Unlock()
	clear(gc.connects)
}

// send posts a message to the guest. A failure means the guest is gone or
// the host is closing it; the receive loop learns of that on its own, so
// the error is only logged.
func (gc *guestConn) send(m protocol.Message) {
	if gc.detached {
		// A successor speaks for the host now; this one must not say
		// anything the guest does not expect.
		return
	}
	b := protocol.Marshal(m)
	err := gc.c.Send(b)
	switch {
	case err == nil:
		if w := gc.h.capture.Load(); w != nil {
			w.Control(gc.id, capture.Out, b)
		}
	case errors.Is(err, transport.ErrSendTimeout):
		// The guest has not read for Limits.SendTimeout: whatever it is
		// doing, the host will not wait on it any longer.
		gc.disconnect(fmt.Errorf("%w: no room for %v in %v", errNotReading, m.Type(), gc.h.limits.SendTimeout))
	default:
		gc.log.Debug("send failed", "message", m.Type(), "err", err)
	}
}

// disconnect ends the guest's connection on the host's initiative, for
// why: it closes the transport, which ends run's Recv; run then reports
// why and cleans up. While the control plane is paused for a save, the
// connection stays open (closing it would fail the save of every guest):
// run returns why once it is resumed, and a successor that took the
// guest over meets the same behaviour and its own bounds. Safe to call
// from any goroutine, with or without mu.
func (gc *guestConn) disconnect(why error) {
	gc.kickMu.Lock()
	first := gc.kicked == nil
	if first {
		gc.kicked = why
	}
	gc.kickMu.Unlock()
	if !first {
		return
	}
	gc.log.Warn("disconnecting guest", "why", why)
	if gc.pause.isPaused() {
		return
	}
	gc.c.Close()
}

// kickReason is why disconnect ended the connection, nil if it did not.
func (gc *guestConn) kickReason() error {
	gc.kickMu.Lock()
	defer gc.kickMu.Unlock()
	return gc.kicked
}

// armReleaseTimerLocked makes sure checkReleases runs once the oldest
// unanswered rescind is due. Must hold mu.
func (gc *guestConn) armReleaseTimerLocked(after time.Duration) {
	if gc.releaseArmed || gc.cleanedUp {
		return
	}
	gc.releaseArmed = true
	if gc.releaseTimer == nil {
		gc.releaseTimer = time.AfterFunc(after, gc.checkReleases)
		return
	}
	gc.releaseTimer.Reset(after)
}

// checkReleases disconnects the guest if a rescind has waited
// Limits.ReleaseTimeout for its RelIdReleased, and otherwise waits for
// the next one due. Runs on the timer's goroutine.
func (gc *guestConn) checkReleases() {
	gc.mu.Lock()
	gc.releaseArmed = false
	if gc.cleanedUp || gc.detached {
		gc.mu.Unlock()
		return
	}
	timeout := gc.h.limits.ReleaseTimeout
	now := time.Now()
	var late uint32
	var next time.Time
	for i := range gc.chans {
		cs := &gc.chans[i]
		if !cs.rescinded || cs.rescindedAt.IsZero() {
			continue
		}
		due := cs.rescindedAt.Add(timeout)
		switch {
		case !now.Before(due):
			if late == 0 {
				late = uint32(i + 1)
			}
		case next.IsZero() || due.Before(next):
			next = due
		}
	}
	if late == 0 && !next.IsZero() {
		gc.armReleaseTimerLocked(next.Sub(now))
	}
	if late != 0 && gc.pause.isPaused() {
		// Not while a save is under way (see disconnect): look again
		// a little later, when the save is done with or the successor
		// holds the guest.
		gc.armReleaseTimerLocked(timeout / 10)
		late = 0
	}
	gc.mu.Unlock()
	if late != 0 {
		gc.disconnect(fmt.Errorf("%w: channel %d, rescinded %v ago", errNoRelease, late, timeout))
	}
}

// drop discards a message the guest should not have sent, with one log line,
// and disconnects the guest once it has done so too often.
func (gc *guestConn) drop(t protocol.MessageType, why string, args ...any) error {
	gc.bad++
	gc.log.Warn("message dropped", append([]any{"message", t, "why", why}, args...)...)
	if gc.bad > gc.h.limits.MaxBadMessages {
		return fmt.Errorf("%w: %d", errTooManyBad, gc.bad)
	}
	return nil
}

// handle decodes and dispatches one message. A returned error disconnects
// the guest. Must hold mu.
func (gc *guestConn) handle(b []byte) error {
	m, err := protocol.Decode(b)
	if err != nil {
		t, _ := protocol.PeekType(b)
		return gc.drop(t, "undecodable", "err", err)
	}
	t := m.Type()
	if t != protocol.TypeInitiateContact {
		if !gc.contacted {
			return gc.drop(t, "before InitiateContact")
		}
		if t.MinVersion() > gc.version {
			return gc.drop(t, "not in the negotiated version", "version", gc.version)
		}
		if f := t.Feature(); f != 0 && gc.features&f == 0 {
			return gc.drop(t, "feature not negotiated", "feature", f)
		}
	}
	switch m := m.(type) {
	case *protocol.InitiateContact:
		return gc.initiateContact(m)
	case *protocol.RequestOffers:
		return gc.requestOffers()
	case *protocol.GpadlHeader:
		return gc.gpadlHeader(m)
	case *protocol.GpadlBody:
		return gc.gpadlBody(m)
	case *protocol.GpadlTeardown:
		return gc.gpadlTeardown(m)
	case *protocol.OpenChannel:
		gc.openChannel(m)
		return nil
	case *protocol.CloseChannel:
		return gc.closeChannel(m)
	case *protocol.RelIDReleased:
		return gc.relIDReleased(m)
	case *protocol.ModifyChannel:
		return gc.modifyChannel(m)
	case *protocol.Unload:
		gc.unload()
		return nil
	case *protocol.TLConnectRequest:
		return gc.tlConnect(m)
	default:
		return gc.drop(t, "not handled by this host")
	}
}

// channelIndex maps a channel id the guest names to its offer index, if the
// guest was offered that channel and it was not rescinded.
func (gc *guestConn) channelIndex(id uint32) (int, bool) {
	if !gc.offersSent || id == 0 || uint64(id) > uint64(len(gc.chans)) {
		return 0, false
	}
	i := int(id - 1)
	if !gc.chans[i].present || gc.chans[i].rescinded || gc.chans[i].released {
		return 0, false
	}
	return i, true
}

func (gc *guestConn) requestOffers() error {
	if gc.offersSent {
		return gc.drop(protocol.TypeRequestOffers, "offers already sent")
	}
	gc.offersSent = true
	n := 0
	if !gc.shuttingDown {
		for i := range gc.chans {
			if gc.chans[i].present {
				gc.sendOffer(i)
				n++
			}
		}
	} else {
		// Offers that arrive during a shutdown would only be rescinded.
		for i := range gc.chans {
			gc.chans[i].released = true
		}
	}
	gc.send(&protocol.AllOffersDelivered{})
	gc.log.Info("offers sent", "channels", n)
	return nil
}

// sendOffer sends the OfferChannel of channel index i. Must hold mu.
func (gc *guestConn) sendOffer(i int) {
	cs := &gc.chans[i]
	gc.send(&protocol.OfferChannel{
		InterfaceType:     cs.spec.InterfaceType,
		InterfaceInstance: cs.spec.InterfaceInstance,
		Flags:             cs.spec.Flags,
		MMIOMegabytes:     cs.spec.MMIOMegabytes,
		UserDefined:       cs.spec.UserDefined,
		SubchannelIndex:   cs.spec.SubchannelIndex,
		ChannelID:         uint32(i + 1),
		MonitorID:         protocol.MonitorIDNone,
		ConnectionID:      cs.connID,
	})
}

func (gc *guestConn) relIDReleased(m *protocol.RelIDReleased) error {
	id := m.ChannelID
	if !gc.offersSent || id == 0 || uint64(id) > uint64(len(gc.chans)) || !gc.chans[id-1].rescinded {
		return gc.drop(protocol.TypeRelIDReleased, "channel not rescinded", "channel", id)
	}
	cs := &gc.chans[id-1]
	if cs.dynamic != nil {
		gc.removeDynamicLocked(int(id - 1))
	} else {
		cs.open, cs.rescinded, cs.released = nil, false, true
	}
	gc.gpadls.dropChannel(id)
	gc.log.Info("channel id released", "channel", id)
	gc.markReleasedLocked()
	return nil
}

// markReleasedLocked closes released once a shutdown has nothing more to
// wait for from this guest. Must hold mu.
func (gc *guestConn) markReleasedLocked() {
	if gc.releasedOnce {
		return
	}
	for i := range gc.chans {
		if gc.chans[i].rescinded {
			return
		}
	}
	if gc.shuttingDown {
		gc.releasedOnce = true
		close(gc.released)
	}
}

// rescindAll withdraws every channel offered to this guest, closing the open
// ones, for Shutdown.
func (gc *guestConn) rescindAll() {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	gc.shuttingDown = true
	if gc.offersSent {
		for i := range gc.chans {
			cs := &gc.chans[i]
			if !cs.present || cs.rescinded || cs.released {
				continue
			}
			gc.rescindLocked(i)
		}
	}
	gc.markReleasedLocked()
}

func (gc *guestConn) modifyChannel(m *protocol.ModifyChannel) error {
	i, ok := gc.channelIndex(m.ChannelID)
	if !ok || gc.chans[i].open == nil {
		return gc.drop(protocol.TypeModifyChannel, "channel not open", "channel", m.ChannelID)
	}
	// Interrupts go to an event, not a VP: there is nothing to move, but
	// a guest of 5.3 or later waits for the answer.
	if gc.version >= protocol.VersionIron {
		gc.send(&protocol.ModifyChannelResponse{ChannelID: m.ChannelID, Status: statusSuccess})
	}
	return nil
}

func (gc *guestConn) unload() {
	gc.resetLocked("unload")
	v := gc.version
	gc.contacted, gc.offersSent, gc.version, gc.features = false, false, 0, 0
	if v >= protocol.TypeUnloadComplete.MinVersion() {
		gc.send(&protocol.UnloadComplete{})
	}
	gc.log.Info("guest unloaded")
	gc.markReleasedLocked()
}
