package hvsock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/protocol"
)

// Guest-side timeouts, Linux's (DEVICES.md §2.1).
const (
	// DefaultConnectTimeout bounds Dial: the wait for the host's offer
	// and the open of its channel.
	DefaultConnectTimeout = 2 * time.Second
	// CloseTimeout bounds how long a guest's Close waits for the host to
	// read what the guest sent before it closes the channel.
	CloseTimeout = 8 * time.Second
)

// guestMaxBuffered is what a guest connection receives ahead of its
// reader.
const guestMaxBuffered = DefaultMaxBuffered

// Dial connects the guest of cl to service on the host, waiting at most
// DefaultConnectTimeout.
func Dial(cl *guest.Client, service protocol.GUID) (*Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultConnectTimeout)
	defer cancel()
	return DialContext(ctx, cl, service)
}

// DialContext connects the guest of cl to service on the host: it sends a
// TlConnectRequest from a fresh endpoint, waits for the host's offer of
// the connection's channel and opens it. A host that refuses answers at
// protocol 4.1 and later: the error then matches ErrRefused and
// syscall.ECONNREFUSED; before 4.1 the host says nothing and DialContext
// fails when ctx ends (os.ErrDeadlineExceeded for a deadline).
func DialContext(ctx context.Context, cl *guest.Client, service protocol.GUID) (*Conn, error) {
	endpoint := ephemeralEndpoint()
	local := Addr{VMID: VMIDWildcard, ServiceID: endpoint}
	remote := Addr{VMID: VMIDParent, ServiceID: service}
	o, err := cl.Connect(ctx, protocol.TLConnectRequest{EndpointID: endpoint, ServiceID: service})
	if err != nil {
		var se *guest.StatusError
		if errors.As(err, &se) && se.Status == protocol.StatusConnectionRefused {
			err = fmt.Errorf("%w (%w)", ErrRefused, se)
		}
		return nil, opError("dial", local, remote, err)
	}
	// The offer's instance is the endpoint and its type the service
	// (Connect matched them): DialOffer names the same addresses.
	return DialOffer(ctx, cl, o)
}

// DialOffer is DialContext's second half: it opens the channel of the
// connection whose offer guest.Client.Connect returned, and waits until
// packets flow. A guest that asks for a connection and opens it later
// calls the two itself.
func DialOffer(ctx context.Context, cl *guest.Client, o guest.Offer) (*Conn, error) {
	local := Addr{VMID: VMIDWildcard, ServiceID: o.InterfaceInstance}
	remote := Addr{VMID: VMIDParent, ServiceID: o.InterfaceType}
	c, err := openGuest(ctx, cl, o, local, remote)
	if err != nil {
		return nil, opError("dial", local, remote, err)
	}
	return c, nil
}

// openGuest opens the connection's channel offered as o and waits until
// packets flow.
func openGuest(ctx context.Context, cl *guest.Client, o guest.Offer, local, remote Addr) (*Conn, error) {
	ev := newEvents()
	ch, st, err := clientChannel(cl, o, guestMaxBuffered, ev)
	if err != nil {
		return nil, err
	}
	if err := ch.Enable(); err != nil {
		ch.Cleanup() //nolint:errcheck // the first error matters
		return nil, err
	}
	// The channel reports a failed open only by its state, and an offer
	// rescinded before the open not at all (its worker waits for another
	// offer of the same interface, which never comes): look at both now
	// and then while waiting.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ev.open:
			c := newConn(st, local, remote, func() { guestDown(ch) }, true, func(fn func()) { go fn() })
			c.hostPeer = true
			return c, nil
		case <-ev.closed:
			ch.Cleanup() //nolint:errcheck // the open is what failed
			return nil, ErrReset
		case <-tick.C:
			if ch.State() == channel.StateClosed {
				ch.Cleanup() //nolint:errcheck // the open is what failed
				return nil, fmt.Errorf("hvsock: the host refused the open of channel %d", o.ChannelID)
			}
			if !cl.Offered(o) {
				// The host gave the connection up before the open: its
				// OpenTimeout, or a servicing's successor that could
				// not take the offer back.
				ch.Cleanup() //nolint:errcheck // nothing opened
				return nil, ErrReset
			}
			continue
		case <-ctx.Done():
			ch.Cleanup() //nolint:errcheck // closes what opened meanwhile
			return nil, ctx.Err()
		}
	}
}

// guestDown ends a guest connection's channel once the host has read
// what the guest sent (the FIN included): closing the channel stops the
// host reading its ring. The host rescinds once both directions ended;
// a guest that closes first closes the channel itself. A host that has
// not read within CloseTimeout gets the channel closed anyway.
func guestDown(ch *channel.Channel) {
	ctx, cancel := context.WithTimeout(context.Background(), CloseTimeout)
	defer cancel()
	drain(ctx, ch)
	ch.Cleanup() //nolint:errcheck // closes the channel if the host did not
}

// GuestListener accepts the host's connections to one service of the
// guest (host-initiated hvsock offers).
type GuestListener struct {
	cl      *guest.Client
	service protocol.GUID
	ctx     context.Context
	cancel  context.CancelFunc

	mu    sync.Mutex
	taken map[protocol.GUID]bool // interface instances (host endpoints) accepted, until their conn is down
}

// Listen listens on service for the host's connections to the guest of
// cl.
func Listen(cl *guest.Client, service protocol.GUID) (*GuestListener, error) {
	if cl.Version() < protocol.TypeTLConnectRequest.MinVersion() {
		return nil, fmt.Errorf("hvsock: protocol %v, hvsock needs 4.0", cl.Version())
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &GuestListener{cl: cl, service: service, ctx: ctx, cancel: cancel, taken: make(map[protocol.GUID]bool)}, nil
}

// Addr is the wildcard VM and the service.
func (l *GuestListener) Addr() net.Addr { return Addr{VMID: VMIDWildcard, ServiceID: l.service} }

// Accept waits for the host's next connection to the service and opens
// its channel.
func (l *GuestListener) Accept() (net.Conn, error) {
	for {
		o, err := l.cl.WaitOfferMatch(l.ctx, func(o guest.Offer) bool {
			return o.IsHVSockOffer() && o.InterfaceType == l.service && o.UserDefined.HVSock().ForGuestAccept && !l.isTaken(o.InterfaceInstance)
		})
		if err != nil {
			if l.ctx.Err() != nil {
				err = net.ErrClosed
			}
			return nil, opError("accept", l.Addr(), nil, err)
		}
		l.take(o.InterfaceInstance, true)
		remote := Addr{VMID: VMIDParent, ServiceID: o.InterfaceInstance}
		ctx, cancel := context.WithTimeout(l.ctx, DefaultOpenTimeout)
		c, err := openGuest(ctx, l.cl, o, l.Addr().(Addr), remote)
		cancel()
		if err != nil {
			l.take(o.InterfaceInstance, false)
			if l.ctx.Err() != nil {
				return nil, opError("accept", l.Addr(), nil, net.ErrClosed)
			}
			continue // that one went away; wait for the next
		}
		down := c.teardown
		c.teardown = func() {
			down()
			l.take(o.InterfaceInstance, false)
		}
		return c, nil
	}
}

func (l *GuestListener) isTaken(id protocol.GUID) bool {
	// Called by WaitOfferMatch under the client's lock: l.mu is taken
	// after it here, and never before it elsewhere.
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.taken[id]
}

func (l *GuestListener) take(id protocol.GUID, on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if on {
		l.taken[id] = true
	} else {
		delete(l.taken, id)
	}
}

// Close stops listening: a blocked Accept returns net.ErrClosed.
// Accepted connections stay.
func (l *GuestListener) Close() error {
	l.cancel()
	return nil
}
