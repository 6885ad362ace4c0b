package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"

	"github.com/govmbus/govmbus/capture"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/transport"
)

// ErrClosed is returned by Serve and ServeConn once the host is shut down or
// closed, and by Shutdown and Close after the first call.
var ErrClosed = errors.New("host: closed")

// MessageConnectionID is the message connection id the host returns in
// VersionResponse from version 5.0 on: the guest's later messages go there.
// It must not be 0 (Linux guests then fail); 1 is the fixed message
// connection id of the versions before 5.0.
const MessageConnectionID = 1

// SupportedFeatures are the Copper feature flags the host grants: a guest
// that asks for them gets the intersection. Guest-specified signal
// parameters are accepted (the long OpenChannel form; signals travel on
// the channel's events whatever connection id it names) and a client id is
// accepted and ignored. The others need machinery this host does not have.
const SupportedFeatures = protocol.FeatureGuestSpecifiedSignalParams | protocol.FeatureClientID

// Config configures a Host.
type Config struct {
	// Devices are offered to every guest, one channel each.
	Devices []Device
	// Logger receives one line per lifecycle event; nil discards them.
	Logger *slog.Logger
	// Limits bound what each guest can make the host hold.
	Limits Limits
	// OnGuest, if set, is called once per guest connection, when its first
	// InitiateContact has been accepted. It runs on that guest's
	// control-plane goroutine before the guest's next message is handled,
	// so offers it makes with Guest.Offer join the list RequestOffers
	// answers with. It must not block on guest traffic.
	OnGuest func(g *Guest)
	// OnConnect, if set, is called for each TlConnectRequest a guest
	// sends (hvsock: the guest connects to a host service). It runs on
	// that guest's control-plane goroutine after the message was
	// handled, outside the guest's lock, so it may call g.Offer; it must
	// not block on guest traffic. nil accepts: the caller offers the
	// channel itself (interface type req.ServiceID, instance
	// req.EndpointID, flag OfferFlagTLNPIProvider). An error refuses
	// the connection: from version 4.1 the guest gets a
	// TlConnectRequestResult with protocol.StatusConnectionRefused,
	// before it nothing (the guest's connect times out). Without
	// OnConnect every request is refused.
	OnConnect func(g *Guest, req protocol.TLConnectRequest) error
}

// offer is a device's place on the bus: the same channel id for every guest.
type offer struct {
	spec      OfferSpec
	dev       Device
	channelID uint32
	connID    uint32
}

// Host is the VMBus server: it accepts guests, negotiates with each,
// offers them the devices and runs their channels' control plane.
//
// Its methods are safe for concurrent use.
type Host struct {
	log     *slog.Logger
	limits  Limits
	onGuest func(*Guest)
	onConn  func(*Guest, protocol.TLConnectRequest) error
	offers  []offer // sorted by (interface type, instance, subchannel index); channel id = index + 1
	capture capture.Tap

	mu        sync.Mutex
	closing   bool
	nextGuest uint64
	listeners map[*transport.Listener]struct{}
	guests    map[*guestConn]struct{}
	restored  []*guestConn   // rebuilt by Restore, served once Resume runs
	refused   []error        // why Restore left each guest out, if it did (RestoreErrors)
	conns     sync.WaitGroup // ServeConn goroutines started by Serve
	accepting sync.WaitGroup // connections Serve accepted, not registered yet
}

// New makes a host offering cfg.Devices. Channel ids follow the order of
// (interface type, interface instance, subchannel index), comparing GUIDs
// by their wire bytes, so they are the same for every guest and every run
// with the same devices.
//
// Preconditions (New panics otherwise, as they are the caller's bugs): at
// most 2047 devices, and no two with the same type, instance and
// subchannel index.
func New(cfg Config) *Host {
	h := &Host{
		log:       cfg.Logger,
		limits:    cfg.Limits.withDefaults(),
		onGuest:   cfg.OnGuest,
		onConn:    cfg.OnConnect,
		listeners: make(map[*transport.Listener]struct{}),
		guests:    make(map[*guestConn]struct{}),
	}
	if h.log == nil {
		h.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if len(cfg.Devices) > protocol.MaxChannelID {
		panic(fmt.Sprintf("host: %d devices, at most %d channel ids", len(cfg.Devices), protocol.MaxChannelID))
	}
	for _, d := range cfg.Devices {
		h.offers = append(h.offers, offer{spec: d.Offer(), dev: d})
	}
	sort.SliceStable(h.offers, func(i, j int) bool { return offerLess(&h.offers[i].spec, &h.offers[j].spec) })
	for i := range h.offers {
		o := &h.offers[i]
		if i > 0 && !offerLess(&h.offers[i-1].spec, &o.spec) {
			panic(fmt.Sprintf("host: two devices offer %v/%v subchannel %d", o.spec.InterfaceType, o.spec.InterfaceInstance, o.spec.SubchannelIndex))
		}
		o.channelID = uint32(i + 1)
		o.connID = protocol.ChannelConnectionID(o.channelID, protocol.MessageSINT, 0)
	}
	return h
}

// Capture is where a capture of the bus attaches (nil: none, the
// default): every control message to and from each guest, and, through
// Channel.Capture, the ring packets and signals of the server channels.
func (h *Host) Capture() *capture.Tap { return &h.capture }

func offerLess(a, b *OfferSpec) bool {
	if c := bytes.Compare(a.InterfaceType[:], b.InterfaceType[:]); c != 0 {
		return c < 0
	}
	if c := bytes.Compare(a.InterfaceInstance[:], b.InterfaceInstance[:]); c != 0 {
		return c < 0
	}
	return a.SubchannelIndex < b.SubchannelIndex
}

// Serve accepts guests on l until Shutdown or Close, serving each on its own
// goroutine, and then returns ErrClosed. It closes l before returning. Any
// other error from Accept is returned as is.
func (h *Host) Serve(l *transport.Listener) error {
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		l.Close()
		return ErrClosed
	}
	h.listeners[l] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.listeners, l)
		h.mu.Unlock()
		l.Close()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			h.mu.Lock()
			closing := h.closing
			h.mu.Unlock()
			if closing {
				return ErrClosed
			}
			return err
		}
		h.conns.Add(1)
		h.accepting.Add(1)
		go func() {
			defer h.conns.Done()
			gc, err := h.register(c)
			h.accepting.Done()
			if err != nil {
				c.Close()
				return
			}
			defer h.unregister(gc)
			gc.run() //nolint:errcheck // logged by run
		}()
	}
}

// ServeConn serves one guest on c until the guest goes away, breaks the
// transport, misbehaves past the limits, or the host shuts down. It owns c
// and closes it before returning. A guest that simply disconnects is not an
// error: ServeConn returns nil; after Shutdown or Close it returns ErrClosed.
func (h *Host) ServeConn(c *transport.Conn) error {
	gc, err := h.register(c)
	if err != nil {
		c.Close()
		return err
	}
	defer h.unregister(gc)
	return gc.run()
}

func (h *Host) register(c *transport.Conn) (*guestConn, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return nil, ErrClosed
	}
	if len(h.guests) >= h.limits.MaxGuests {
		h.log.Warn("guest refused: too many guests", "limit", h.limits.MaxGuests)
		return nil, fmt.Errorf("host: %d guests connected, the limit", len(h.guests))
	}
	h.nextGuest++
	gc := newGuestConn(h, c, h.nextGuest)
	h.guests[gc] = struct{}{}
	return gc, nil
}

// NumGuests is the number of guest connections being served.
func (h *Host) NumGuests() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.guests)
}

func (h *Host) unregister(gc *guestConn) {
	h.mu.Lock()
	delete(h.guests, gc)
	h.mu.Unlock()
}

// stop marks the host closing, closes its listeners and returns the guests
// connected now. ok is false if it was closing already.
func (h *Host) stop() (guests []*guestConn, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ok = !h.closing
	h.closing = true
	for l := range h.listeners {
		l.Close()
	}
	for gc := range h.guests {
		guests = append(guests, gc)
	}
	return guests, ok
}

// Shutdown stops accepting guests, rescinds every channel offered to a
// connected guest (closing the open ones: Device.Close), waits until each
// guest has released its channel ids (RelIdReleased) or ctx ends, then
// disconnects every guest and waits for their goroutines. It returns
// ctx.Err() if ctx ended first (the guests are disconnected anyway).
func (h *Host) Shutdown(ctx context.Context) error {
	guests, ok := h.stop()
	if !ok {
		h.wait(guests)
		return ErrClosed
	}
	h.log.Info("host shutting down", "guests", len(guests))
	// Rescinds run beside each other and beside the wait below: a guest
	// that stopped reading its socket can hold its connection's lock in a
	// blocked send, and must not keep Shutdown past ctx. Closing the
	// connections (h.wait) unblocks such a send.
	var rescinds sync.WaitGroup
	for _, gc := range guests {
		rescinds.Add(1)
		go func() {
			defer rescinds.Done()
			gc.rescindAll()
		}()
	}
	var err error
	for _, gc := range guests {
		select {
		case <-gc.released:
		case <-gc.done:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			break
		}
	}
	h.wait(guests)
	rescinds.Wait()
	return err
}

// Close disconnects every guest at once (closing their open channels) and
// stops accepting; it waits for the guests' goroutines. Later calls return
// ErrClosed.
func (h *Host) Close() error {
	guests, ok := h.stop()
	h.wait(guests)
	if !ok {
		return ErrClosed
	}
	return nil
}

// wait disconnects guests and waits for every goroutine the host started.
func (h *Host) wait(guests []*guestConn) {
	h.mu.Lock()
	idle := h.restored // restored, never resumed: no goroutine to wait for
	h.restored = nil
	h.mu.Unlock()
	for _, gc := range idle {
		gc.discard()
		h.unregister(gc)
	}
	for _, gc := range guests {
		gc.pause.stop()
		gc.c.Close()
	}
	for _, gc := range guests {
		<-gc.done
	}
	h.conns.Wait()
}
