package guest_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/transport"
)

// The reactions of a scripted host to each guest message, one input byte
// each (the low 3 bits; the rest picks among variants).
const (
	reactAnswer      = iota // the answer a good host gives
	reactTwice              // that answer, twice
	reactWrong              // an answer with ids or status changed by the next bytes
	reactStall              // no answer: the guest's request is cancelled
	reactRescind            // rescind the message's channel, then answer
	reactInject             // answer, then a message built from the next bytes
	reactInjectFirst        // a message built from the next bytes, then the answer
	reactHangUp             // close the connection
)

// idleCancel is how long the scripted host lets the guest be quiet before
// it cancels the guest's request in progress.
const idleCancel = 50 * time.Millisecond

// fuzzGpadlBase is the first GPADL id a Client hands out.
const fuzzGpadlBase = 0xE1E10

// fuzzService and fuzzEndpoint are the hvsock connection the driver asks for.
var (
	fuzzService  = protocol.GUID{0x5e}
	fuzzEndpoint = protocol.GUID{0xe9}
	fuzzDevice   = protocol.GUID{1}
)

// scriptHost plays a host that answers what the guest sends as its script
// says, and keeps the model the invariants are checked against.
type scriptHost struct {
	t      *testing.T
	c      *transport.Conn
	script []byte
	// hangUpAt, if not zero, is the guest message at which the host
	// hangs up instead of answering.
	hangUpAt protocol.MessageType

	mu        sync.Mutex
	cancel    context.CancelFunc // the driver's request in progress
	offered   map[uint32]bool    // channel ids offered and not rescinded
	rescinded map[uint32]int     // rescinds not yet released by the guest, by channel id
	reoffered map[uint32]bool    // offered again before the guest released it
	opening   map[uint32]uint32  // OpenChannel seen, no result for its OpenID sent
	granted   map[uint32]int     // success results sent after an OpenChannel
	openedAt  map[uint32]int     // when the GPADL of a channel was last created (message count)
	goneAt    map[uint32]int     // when the channel was last rescinded
	sent      int
	unloadAt  int  // when the first UnloadComplete was sent
	contact   bool // a version accepted: the guest reads offers from now on
}

func newScriptHost(t *testing.T, c *transport.Conn, script []byte) *scriptHost {
	return &scriptHost{t: t, c: c, script: script, offered: map[uint32]bool{}, rescinded: map[uint32]int{},
		reoffered: map[uint32]bool{}, opening: map[uint32]uint32{}, granted: map[uint32]int{},
		openedAt: map[uint32]int{}, goneAt: map[uint32]int{}}
}

func (h *scriptHost) next() (byte, bool) {
	if len(h.script) == 0 {
		return 0, false
	}
	b := h.script[0]
	h.script = h.script[1:]
	return b, true
}

func (h *scriptHost) byteOr(d byte) byte {
	if b, ok := h.next(); ok {
		return b
	}
	return d
}

// send sends m and updates the model by what the guest will see.
func (h *scriptHost) send(m protocol.Message) {
	h.mu.Lock()
	h.sent++
	switch m := m.(type) {
	case *protocol.VersionResponse:
		h.contact = h.contact || m.VersionSupported
	case *protocol.OfferChannel:
		if h.contact && protocol.ValidChannelID(m.ChannelID) {
			if h.rescinded[m.ChannelID] > 0 {
				h.reoffered[m.ChannelID] = true
			}
			h.offered[m.ChannelID] = true
		}
	case *protocol.RescindChannelOffer:
		if h.offered[m.ChannelID] {
			delete(h.offered, m.ChannelID)
			h.rescinded[m.ChannelID]++ // offered again, rescinded again: released again
			h.goneAt[m.ChannelID] = h.sent
		}
	case *protocol.OpenChannelResult:
		if id, ok := h.opening[m.ChannelID]; ok && id == m.OpenID {
			delete(h.opening, m.ChannelID)
			if m.Status == 0 {
				h.granted[m.ChannelID]++
			}
		}
	case *protocol.GpadlCreated:
		h.openedAt[m.ChannelID] = h.sent
	case *protocol.UnloadComplete:
		if h.unloadAt == 0 {
			h.unloadAt = h.sent
		}
	}
	h.mu.Unlock()
	if traceFuzz {
		h.t.Logf("host: %T %+v", m, m)
	}
	// A send fails once the guest has hung up; what it sent before is
	// still read.
	h.c.Send(protocol.Marshal(m)) //nolint:errcheck

}

func (h *scriptHost) hangUp() { h.c.Close() }

func (h *scriptHost) cancelRequest() {
	h.mu.Lock()
	if h.cancel != nil {
		h.cancel()
	}
	h.mu.Unlock()
}

// request runs one driver request under a context the host may cancel.
func (h *scriptHost) request(fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.mu.Lock()
	h.cancel = cancel
	h.mu.Unlock()
	err := fn(ctx)
	h.mu.Lock()
	h.cancel = nil
	h.mu.Unlock()
	return err
}

// offer builds the offer of a channel; hvsock ones are for the driver's
// connection.
func (h *scriptHost) offer(id uint32, hvsock bool) *protocol.OfferChannel {
	o := &protocol.OfferChannel{ChannelID: id, ConnectionID: id, InterfaceType: fuzzDevice, InterfaceInstance: protocol.GUID{byte(id)}}
	if hvsock {
		o.InterfaceType, o.InterfaceInstance = fuzzService, fuzzEndpoint
		o.Flags = protocol.OfferFlagTLNPIProvider
	}
	return o
}

// answer is a good host's answer to m (nil if it has none).
func (h *scriptHost) answer(m protocol.Message) []protocol.Message {
	switch m := m.(type) {
	case *protocol.InitiateContact:
		return []protocol.Message{&protocol.VersionResponse{VersionSupported: true, VersionOrConnectionID: 1, HasFeatures: m.VersionRequested >= protocol.VersionCopper}}
	case *protocol.RequestOffers:
		return []protocol.Message{h.offer(1, false), h.offer(2, false), &protocol.AllOffersDelivered{}}
	case *protocol.GpadlHeader:
		return []protocol.Message{&protocol.GpadlCreated{ChannelID: m.ChannelID, GpadlID: m.GpadlID}}
	case *protocol.OpenChannel:
		return []protocol.Message{&protocol.OpenChannelResult{ChannelID: m.ChannelID, OpenID: m.OpenID}}
	case *protocol.GpadlTeardown:
		return []protocol.Message{&protocol.GpadlTorndown{GpadlID: m.GpadlID}}
	case *protocol.Unload:
		return []protocol.Message{&protocol.UnloadComplete{}}
	case *protocol.TLConnectRequest:
		return []protocol.Message{h.offer(3, true)}
	}
	return nil
}

// channelOf is the channel id m names, if any.
func channelOf(m protocol.Message) (uint32, bool) {
	switch m := m.(type) {
	case *protocol.GpadlHeader:
		return m.ChannelID, true
	case *protocol.OpenChannel:
		return m.ChannelID, true
	case *protocol.CloseChannel:
		return m.ChannelID, true
	case *protocol.GpadlTeardown:
		return m.ChannelID, true
	case *protocol.RelIDReleased:
		return m.ChannelID, true
	}
	return 0, false
}

// wrong changes an answer's ids or status by the next script bytes.
func (h *scriptHost) wrong(m protocol.Message) protocol.Message {
	d := uint32(h.byteOr(1))
	switch m := m.(type) {
	case *protocol.VersionResponse:
		switch d % 3 {
		case 0:
			m.VersionSupported = false
		case 1:
			m.VersionOrConnectionID = 0
		default:
			m.HasFeatures, m.SupportedFeatures = true, protocol.FeatureFlags(^uint32(0))
		}
	case *protocol.GpadlCreated:
		if d&1 != 0 {
			m.Status = 0xC0000001
		} else {
			m.ChannelID ^= d >> 1
		}
	case *protocol.OpenChannelResult:
		if d&1 != 0 {
			m.Status = 0xC0000001
		} else {
			m.ChannelID ^= d >> 1
		}
	case *protocol.GpadlTorndown:
		m.GpadlID ^= d
	case *protocol.OfferChannel:
		m.ChannelID ^= d
	}
	return m
}

// built is a host→guest message of the kind and fields the script says.
func (h *scriptHost) built() protocol.Message {
	k := h.byteOr(0)
	a := uint32(h.byteOr(0))
	id := a % 5 // channel ids the driver sees, and some it does not
	gp := fuzzGpadlBase + a%8
	switch k % 11 {
	case 0:
		return h.offer(id, a&0x80 != 0)
	case 1:
		return &protocol.RescindChannelOffer{ChannelID: id}
	case 2:
		return &protocol.AllOffersDelivered{}
	case 3:
		return &protocol.GpadlCreated{ChannelID: id, GpadlID: gp, Status: uint32(k>>4) << 28}
	case 4:
		return &protocol.GpadlTorndown{GpadlID: gp}
	case 5:
		return &protocol.OpenChannelResult{ChannelID: id, OpenID: id, Status: uint32(k>>4) << 28}
	case 6:
		return &protocol.UnloadComplete{}
	case 7:
		return &protocol.VersionResponse{VersionSupported: a&1 != 0, VersionOrConnectionID: a}
	case 8:
		return &protocol.TLConnectRequestResult{EndpointID: fuzzEndpoint, ServiceID: fuzzService, Status: protocol.StatusConnectionRefused}
	case 9:
		o := h.offer(id, true)
		o.UserDefined[4] = 1 // for guest accept: not Connect's answer
		return o
	default:
		return &protocol.OfferChannel{ChannelID: a << 8, InterfaceType: fuzzDevice}
	}
}

// serve reacts to each guest message until the guest hangs up. Past the
// end of the script it is a good host. It reports the protocol breaches
// of the guest it sees.
func (h *scriptHost) serve(done chan<- struct{}) {
	defer close(done)
	buf := make([]byte, transport.MaxMessageSize)
	for {
		// A guest quiet for idleCancel waits for something this host
		// will not send (an offer it rescinded, say): its request is
		// cancelled, as a caller's deadline would.
		ctx, cancel := context.WithTimeout(context.Background(), idleCancel)
		n, err := h.c.Recv(ctx, buf)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			h.cancelRequest()
			continue
		}
		if err != nil {
			return
		}
		m, err := protocol.Decode(buf[:n])
		if err != nil {
			h.t.Errorf("the guest sent an undecodable message: %v", err)
			continue
		}
		h.check(m)
		if traceFuzz {
			h.t.Logf("guest: %T %+v", m, m)
		}
		r, _ := h.next()
		if m.Type() == h.hangUpAt {
			r = reactHangUp
		}
		ans := h.answer(m)
		switch r & 7 {
		case reactAnswer:
		case reactTwice:
			ans = append(ans, ans...)
		case reactWrong:
			if len(ans) > 0 {
				ans[0] = h.wrong(ans[0])
				h.cancelRequest()
			}
		case reactStall:
			ans = nil
			h.cancelRequest()
		case reactRescind:
			if id, ok := channelOf(m); ok {
				ans = append([]protocol.Message{&protocol.RescindChannelOffer{ChannelID: id}}, ans...)
			}
		case reactInject:
			ans = append(ans, h.built())
		case reactInjectFirst:
			ans = append([]protocol.Message{h.built()}, ans...)
		case reactHangUp:
			h.hangUp()
			continue
		}
		for _, a := range ans {
			h.send(a)
		}
	}
}

// check judges one guest message against the model.
func (h *scriptHost) check(m protocol.Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch m := m.(type) {
	case *protocol.OpenChannel:
		id := m.ChannelID
		if at, ok := h.goneAt[id]; ok && at < h.openedAt[id] && !h.offered[id] {
			h.t.Errorf("OpenChannel %d after the host rescinded it (message %d) and before its ring GPADL was created (message %d)", id, at, h.openedAt[id])
		}
		h.opening[id] = m.OpenID
	case *protocol.RelIDReleased:
		if h.rescinded[m.ChannelID] == 0 {
			h.t.Errorf("RelIdReleased %d: not rescinded, or released already", m.ChannelID)
		}
		if h.rescinded[m.ChannelID]--; h.rescinded[m.ChannelID] <= 0 {
			delete(h.rescinded, m.ChannelID)
			delete(h.reoffered, m.ChannelID)
		}
	}
}

// drive is a guest that uses every request once, the script's host
// answering. It reports whether Unload, the last request, succeeded:
// the guest has then handled every message the host sent before
// UnloadComplete.
func drive(t *testing.T, h *scriptHost, gc *transport.Conn) (unloaded bool) {
	var cl *guest.Client
	err := h.request(func(ctx context.Context) (err error) {
		cl, err = guest.New(ctx, gc, guest.Config{MemorySize: 64 * 4096})
		return err
	})
	if err != nil {
		expectHostFault(t, "New", err)
		gc.Close()
		return false
	}
	defer cl.Close()
	var offers []guest.Offer
	err = h.request(func(ctx context.Context) (err error) {
		offers, err = cl.RequestOffers(ctx)
		return err
	})
	expectHostFault(t, "RequestOffers", err)
	open := func(o guest.Offer) {
		var ch *guest.Channel
		err := h.request(func(ctx context.Context) (err error) {
			ch, err = cl.Open(ctx, o, guest.OpenOptions{OutPages: 2, InPages: 2})
			return err
		})
		if err != nil {
			expectHostFault(t, "Open", err)
			return
		}
		h.mu.Lock()
		if h.granted[o.ChannelID] == 0 {
			t.Errorf("Open %d succeeded without a success OpenChannelResult after its OpenChannel", o.ChannelID)
		} else {
			h.granted[o.ChannelID]--
		}
		h.mu.Unlock()
		expectHostFault(t, "Close", h.request(ch.Close))
	}
	for i, o := range offers {
		if i == 3 {
			break
		}
		open(o)
	}
	if cl.Version() >= protocol.TypeTLConnectRequest.MinVersion() {
		var o guest.Offer
		err := h.request(func(ctx context.Context) (err error) {
			o, err = cl.Connect(ctx, protocol.TLConnectRequest{EndpointID: fuzzEndpoint, ServiceID: fuzzService})
			return err
		})
		if err == nil {
			open(o)
		} else {
			expectHostFault(t, "Connect", err)
		}
	}
	err = h.request(cl.Unload)
	expectHostFault(t, "Unload", err)
	return err == nil
}

// expectHostFault fails t unless err is nil or one a hostile host may
// cause: its fault, a closed connection, a refusal, a rescind, or the
// request's cancellation.
func expectHostFault(t *testing.T, op string, err error) {
	var st *guest.StatusError
	switch {
	case err == nil, errors.Is(err, guest.ErrProtocol), errors.Is(err, guest.ErrClosed),
		errors.Is(err, guest.ErrRescinded), errors.Is(err, guest.ErrNoVersion),
		errors.Is(err, context.Canceled), errors.As(err, &st),
		errors.Is(err, transport.ErrClosed), errors.Is(err, transport.ErrPeerClosed):
		return
	}
	t.Errorf("%s: %v: names neither the host's fault nor a closed connection", op, err)
}

// FuzzClient runs a guest.Client against a host that reacts to each of
// its messages as the input says: answers, answers twice or wrongly, no
// answer, rescinds, messages nobody asked for, hang-ups. The guest must
// not panic or hang, every request must end in success or an error that
// names the host (or the connection's end), a channel is open only after
// a success result for its OpenChannel, the guest never opens a channel
// rescinded before its ring GPADL was created, and it releases each
// rescinded channel id exactly once.
func FuzzClient(f *testing.F) {
	f.Add([]byte{})                                                    // a good host
	f.Add([]byte{reactAnswer, reactAnswer, reactAnswer, reactRescind}) // rescinded while its GPADL is made
	f.Add([]byte{reactAnswer, reactAnswer, reactRescind})              // rescinded at the first GPADL
	f.Add([]byte{reactAnswer, reactAnswer, reactAnswer, reactAnswer, reactRescind})
	f.Add([]byte{reactAnswer, reactAnswer, reactAnswer, reactTwice, reactTwice})
	f.Add([]byte{reactWrong, 1})
	f.Add([]byte{reactAnswer, reactStall, reactAnswer})
	f.Add([]byte{reactAnswer, reactAnswer, reactWrong, 2, reactAnswer, reactWrong, 4})
	f.Add([]byte{reactAnswer, reactInjectFirst, 5, 1, reactInjectFirst, 1, 1, reactInject, 0, 1})
	f.Add([]byte{reactAnswer, reactAnswer, reactAnswer, reactHangUp})
	f.Add([]byte{reactAnswer, reactAnswer, reactAnswer, reactAnswer, reactAnswer, reactStall})
	f.Fuzz(func(t *testing.T, script []byte) {
		hc, gc, err := transport.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		h := newScriptHost(t, hc, script)
		served := make(chan struct{})
		go h.serve(served)
		driven := make(chan struct{})
		var unloaded bool
		go func() {
			defer close(driven)
			unloaded = drive(t, h, gc)
		}()
		// No request may wait for ever: a stalled one is cancelled, and
		// a hang-up ends the rest. Ten seconds is far beyond any run.
		select {
		case <-driven:
		case <-time.After(10 * time.Second):
			stacks := make([]byte, 1<<20)
			stacks = stacks[:runtime.Stack(stacks, true)]
			hc.Close()
			<-driven
			t.Fatalf("the guest hung:\n%s", stacks)
		}
		<-served
		hc.Close()
		h.mu.Lock()
		defer h.mu.Unlock()
		if unloaded {
			// Unload's answer came no earlier than the first
			// UnloadComplete: the guest handled every rescind before it.
			for id := range h.rescinded {
				if !h.reoffered[id] && h.goneAt[id] < h.unloadAt {
					t.Errorf("channel %d rescinded and never released", id)
				}
			}
		}
	})
}

// traceFuzz logs every message both ways, to read a failing input.
const traceFuzz = false
