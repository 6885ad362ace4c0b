package guest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/transport"
)

// DefaultMemorySize is the guest memory New and Dial create when
// Config.MemorySize is zero: 16 MiB.
const DefaultMemorySize = 16 << 20

// DefaultNegotiateTimeout bounds the wait for the host's answer to each
// version offered when Config.NegotiateTimeout is zero.
const DefaultNegotiateTimeout = 10 * time.Second

var (
	// ErrNoVersion: the host accepted none of the versions offered.
	ErrNoVersion = errors.New("guest: host accepted no protocol version")
	// ErrClosed: the client was closed or the connection to the host ended.
	ErrClosed = errors.New("guest: connection closed")
	// ErrRescinded: the host rescinded the channel.
	ErrRescinded = errors.New("guest: channel rescinded")
)

// StatusError is a failure status the host answered a request with.
type StatusError struct {
	Op     string // "create GPADL", "open channel"
	Status uint32 // the NTSTATUS
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("guest: %s: host status %#08x", e.Op, e.Status)
}

// Config configures a Client.
type Config struct {
	// MemorySize is the size of guest memory in bytes, a multiple of 4096;
	// zero means DefaultMemorySize.
	MemorySize uint64
	// Versions are offered newest first until the host accepts one;
	// nil means protocol.Versions().
	Versions []protocol.Version
	// Features are the Copper feature flags to ask for; the client gets
	// the intersection with what the host grants.
	Features protocol.FeatureFlags
	// ChannelPoll is the poll budget this Client's channels take (package
	// channel's SetPoll, which bounds it) unless they set their own; 0
	// never polls.
	ChannelPoll time.Duration
	// NegotiateTimeout bounds the wait for the host's answer to each
	// version offered, whatever the context of New allows: a host that
	// stays silent (or whose answers do not decode) fails New with an
	// error wrapping ErrProtocol instead of holding it. Zero means
	// DefaultNegotiateTimeout.
	NegotiateTimeout time.Duration
}

// waitKey names an answer a request waits for.
type waitKey struct {
	t  protocol.MessageType
	id uint32 // GPADL id, or channel id
}

// Client is a VMBus guest's control plane on one connection to a host.
// Its methods are safe for concurrent use.
type Client struct {
	c        *transport.Conn
	mem      *guestmem.Memory
	alloc    *guestmem.Allocator
	version  protocol.Version
	features protocol.FeatureFlags
	poll     time.Duration // Config.ChannelPoll

	done      chan struct{} // closed when the receive loop ends
	rescinded chan uint32
	closeOnce sync.Once

	mu          sync.Mutex
	err         error // why the receive loop ended
	waiters     map[waitKey]chan protocol.Message
	offers      map[uint32]Offer
	offersAsked bool
	allOffers   chan struct{} // closed at AllOffersDelivered
	offerChange chan struct{} // closed and replaced whenever offers change
	channels    map[uint32]*Channel
	gone        map[uint32]bool             // rescinded channel ids: true once RelIdReleased is sent
	tlWaiters   map[protocol.GUID]*tlWaiter // Connect's, by endpoint id: the refusal's status
	nextGpadl   uint32
	gpadls      map[uint32]uint32 // the GPADLs made and not yet torn down: channel id by GPADL id
	nextOpenID  uint32            // OpenChannel's OpenID: per open, from a random start
	openIDs     map[uint32]uint32 // the OpenID each pending Open awaits, by channel id
	// memRefs counts the holders of guest memory's addresses: the client
	// until Close, and each channel from its Open to its end
	// (Channel.finish). The last one unmaps them.
	memRefs int
	closed  bool // Close has begun: Open refuses
}

// Dial connects to the host listening at path, makes guest memory, hands it
// over and negotiates a version.
func Dial(ctx context.Context, path string, cfg Config) (*Client, error) {
	c, err := transport.Dial(ctx, path)
	if err != nil {
		return nil, err
	}
	cl, err := New(ctx, c, cfg)
	if err != nil {
		c.Close()
		return nil, err
	}
	return cl, nil
}

// New is Dial on an established connection. On success the Client owns c;
// on error the caller still does.
func New(ctx context.Context, c *transport.Conn, cfg Config) (*Client, error) {
	size := cfg.MemorySize
	if size == 0 {
		size = DefaultMemorySize
	}
	versions := cfg.Versions
	if versions == nil {
		versions = protocol.Versions()
	}
	mem, err := guestmem.New(size)
	if err != nil {
		return nil, err
	}
	if err := c.SendMemory(mem); err != nil {
		mem.Close()
		return nil, err
	}
	cl := &Client{
		c:           c,
		mem:         mem,
		memRefs:     1,
		alloc:       guestmem.NewAllocator(mem.Pages()),
		done:        make(chan struct{}),
		rescinded:   make(chan uint32, protocol.MaxChannelID+1),
		waiters:     make(map[waitKey]chan protocol.Message),
		offers:      make(map[uint32]Offer),
		allOffers:   make(chan struct{}),
		offerChange: make(chan struct{}),
		channels:    make(map[uint32]*Channel),
		gone:        make(map[uint32]bool),
		tlWaiters:   make(map[protocol.GUID]*tlWaiter),
		nextGpadl:   0xE1E10, // where Linux starts
		gpadls:      make(map[uint32]uint32),
		poll:        cfg.ChannelPoll,
		nextOpenID:  rand.Uint32(),
		openIDs:     make(map[uint32]uint32),
	}
	wait := cfg.NegotiateTimeout
	if wait <= 0 {
		wait = DefaultNegotiateTimeout
	}
	if err := cl.negotiate(ctx, versions, cfg.Features, wait); err != nil {
		mem.Close()
		return nil, err
	}
	go cl.loop()
	return cl, nil
}

// negotiate steps down versions until the host accepts one, waiting at
// most wait for each answer. It runs before the receive loop, so it reads
// the connection itself.
func (cl *Client) negotiate(ctx context.Context, versions []protocol.Version, features protocol.FeatureFlags, wait time.Duration) error {
	buf := make([]byte, transport.MaxMessageSize)
	for _, v := range versions {
		ic := &protocol.InitiateContact{VersionRequested: v, ParentToChildMonitorPage: 0, ChildToParentMonitorPage: 0}
		if v >= protocol.VersionWin10RS31 {
			ic.MessageSINT = protocol.MessageSINT
		}
		if v >= protocol.VersionCopper {
			ic.Features = features
		}
		if err := cl.c.Send(protocol.Marshal(ic)); err != nil {
			return fmt.Errorf("%w: %w", ErrClosed, err)
		}
		vctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		for {
			n, err := cl.c.Recv(vctx, buf)
			if err != nil {
				if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
					return err
				}
				if vctx.Err() != nil {
					return Protocolf("no answer to InitiateContact for %v within %v", v, wait)
				}
				return fmt.Errorf("%w: %w", ErrClosed, err)
			}
			m, err := protocol.Decode(buf[:n])
			if err != nil {
				continue // not ours to judge during negotiation
			}
			vr, ok := m.(*protocol.VersionResponse)
			if !ok {
				continue
			}
			if !vr.VersionSupported {
				break
			}
			if v >= protocol.VersionWin10RS31 && vr.VersionOrConnectionID == 0 {
				return Protocolf("host accepted %v with message connection id 0", v)
			}
			cl.version = v
			if v >= protocol.VersionCopper {
				cl.features = features & vr.SupportedFeatures
			}
			return nil
		}
	}
	return ErrNoVersion
}

// Version is the negotiated protocol version.
func (cl *Client) Version() protocol.Version { return cl.version }

// Features are the negotiated Copper feature flags.
func (cl *Client) Features() protocol.FeatureFlags { return cl.features }

// ChannelPoll is Config.ChannelPoll: the poll budget of this Client's
// channels that set none of their own.
func (cl *Client) ChannelPoll() time.Duration { return cl.poll }

// Memory is guest memory, shared with the host.
func (cl *Client) Memory() *guestmem.Memory { return cl.mem }

// Pages is the allocator of guest pages; Open takes ring pages from it.
func (cl *Client) Pages() *guestmem.Allocator { return cl.alloc }

// Rescinded delivers the ids of channels the host rescinded. The client
// answers RelIdReleased by itself: at once for a channel that is not open,
// and when Channel.Close is called for an open one. The channel is
// buffered for every possible id; ids beyond that are dropped. It is
// closed when the connection ends.
func (cl *Client) Rescinded() <-chan uint32 { return cl.rescinded }

// Done is closed when the connection to the host has ended, or the
// client was closed; Err says why then.
func (cl *Client) Done() <-chan struct{} { return cl.done }

// Err is why the connection ended (it matches ErrClosed), or nil while it
// lasts.
func (cl *Client) Err() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.err
}

// loop receives the host's messages and hands each to whoever waits for it.
func (cl *Client) loop() {
	buf := make([]byte, transport.MaxMessageSize)
	var err error
	for {
		var n int
		n, err = cl.c.Recv(context.Background(), buf)
		if err != nil {
			break
		}
		m, derr := protocol.Decode(buf[:n])
		if derr != nil {
			continue // a host's malformed message is ignored, as Linux does
		}
		cl.dispatch(m)
	}
	cl.mu.Lock()
	cl.err = fmt.Errorf("%w: %v", ErrClosed, err)
	for k, w := range cl.waiters {
		close(w)
		delete(cl.waiters, k)
	}
	// With the connection every open channel is gone, as if rescinded:
	// its owner closes it, and nothing waits for a host that cannot
	// answer any more.
	for _, ch := range cl.channels {
		if !ch.rescindSet {
			ch.rescindSet = true
			close(ch.rescinded)
		}
	}
	cl.mu.Unlock()
	close(cl.rescinded)
	close(cl.done)
}

func (cl *Client) dispatch(m protocol.Message) {
	switch m := m.(type) {
	case *protocol.OfferChannel:
		cl.addOffer(m)
	case *protocol.AllOffersDelivered:
		cl.mu.Lock()
		select {
		case <-cl.allOffers:
		default:
			close(cl.allOffers)
		}
		cl.mu.Unlock()
	case *protocol.GpadlCreated:
		cl.deliver(waitKey{protocol.TypeGpadlCreated, m.GpadlID}, m)
	case *protocol.GpadlTorndown:
		cl.deliver(waitKey{protocol.TypeGpadlTorndown, m.GpadlID}, m)
	case *protocol.OpenChannelResult:
		// Only the answer to the OpenChannel in flight counts: a host's
		// stale duplicate, or a result sent before the request, would
		// report open a channel the host never opened.
		cl.mu.Lock()
		want, ok := cl.openIDs[m.ChannelID]
		cl.mu.Unlock()
		if ok && want == m.OpenID {
			cl.deliver(waitKey{protocol.TypeOpenChannelResult, m.ChannelID}, m)
		}
	case *protocol.UnloadComplete:
		cl.deliver(waitKey{protocol.TypeUnloadComplete, 0}, m)
	case *protocol.RescindChannelOffer:
		cl.rescind(m.ChannelID)
	case *protocol.TLConnectRequestResult:
		cl.connectResult(m)
	}
}

// expect registers interest in an answer before the request is sent.
func (cl *Client) expect(k waitKey) (chan protocol.Message, error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.err != nil {
		return nil, cl.err
	}
	if _, ok := cl.waiters[k]; ok {
		return nil, fmt.Errorf("guest: a %v for id %#x is awaited already", k.t, k.id)
	}
	w := make(chan protocol.Message, 1)
	cl.waiters[k] = w
	return w, nil
}

func (cl *Client) forget(k waitKey) {
	cl.mu.Lock()
	delete(cl.waiters, k)
	cl.mu.Unlock()
}

func (cl *Client) deliver(k waitKey, m protocol.Message) {
	cl.mu.Lock()
	w, ok := cl.waiters[k]
	delete(cl.waiters, k)
	cl.mu.Unlock()
	if ok {
		w <- m
	}
}

// await waits for the answer w was registered for.
func (cl *Client) await(ctx context.Context, k waitKey, w chan protocol.Message) (protocol.Message, error) {
	select {
	case m, ok := <-w:
		if !ok {
			return nil, cl.closedErr()
		}
		if m == nil {
			return nil, ErrRescinded
		}
		return m, nil
	case <-ctx.Done():
		cl.forget(k)
		return nil, ctx.Err()
	}
}

func (cl *Client) closedErr() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.err != nil {
		return cl.err
	}
	return ErrClosed
}

func (cl *Client) send(m protocol.Message) error {
	if err := cl.c.Send(protocol.Marshal(m)); err != nil {
		return fmt.Errorf("guest: send %v: %w", m.Type(), err)
	}
	return nil
}

// Unload asks the host to drop the connection's state (every channel and
// GPADL) and waits for UnloadComplete. Hosts before Win7 do not answer; then
// Unload returns after sending.
func (cl *Client) Unload(ctx context.Context) error {
	k := waitKey{protocol.TypeUnloadComplete, 0}
	w, err := cl.expect(k)
	if err != nil {
		return err
	}
	if err := cl.send(&protocol.Unload{}); err != nil {
		cl.forget(k)
		return err
	}
	if cl.version < protocol.TypeUnloadComplete.MinVersion() {
		cl.forget(k)
		return nil
	}
	_, err = cl.await(ctx, k, w)
	return err
}

// Close disconnects from the host, which closes every channel this client
// left open, and frees guest memory. A channel still open keeps the
// memory's addresses, backed by private memory from now on
// (guestmem.Memory.Detach): a driver that writes to its rings after this
// (a last packet on its way out) writes there instead of faulting, and
// the channel's Close unmaps them. It is idempotent.
func (cl *Client) Close() error {
	cl.closeOnce.Do(func() {
		cl.mu.Lock()
		cl.closed = true
		cl.mu.Unlock()
		cl.c.Close()
		<-cl.done
		cl.mu.Lock()
		chans := cl.channels
		cl.channels = map[uint32]*Channel{}
		cl.mu.Unlock()
		for _, ch := range chans {
			if ch.ToHost != nil { // nil while Open makes the ring GPADL
				ch.ToHost.Close()
			}
			if ch.FromHost != nil {
				ch.FromHost.Close()
			}
		}
		// The channels still open keep the memory's addresses, not its
		// pages: a ring written after this reaches private memory.
		cl.unrefMem(true)
	})
	return nil
}

// unrefMem drops a hold of guest memory's addresses, and unmaps them
// after the last; detach (the client's own hold) gives up the pages
// while channels still hold the addresses.
func (cl *Client) unrefMem(detach bool) {
	cl.mu.Lock()
	cl.memRefs--
	last := cl.memRefs == 0
	cl.mu.Unlock()
	switch {
	case last:
		cl.mem.Close()
	case detach:
		cl.mem.Detach()
	}
}
