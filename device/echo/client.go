package echo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/protocol"
)

// DefaultRingPages is each ring's size in pages (control page included)
// when ClientConfig leaves it zero: 256 KiB of data per direction.
const DefaultRingPages = 65

// ClientConfig configures a Client. The zero value opens the first echo
// channel offered, with DefaultRingPages per ring.
type ClientConfig struct {
	Instance   protocol.GUID // zero: any instance
	RingPages  int           // zero: DefaultRingPages
	MaxPayload int           // zero: DefaultMaxPayload
}

// openPoll is how often Open looks whether the open failed.
const openPoll = 5 * time.Millisecond

// ErrClosed is returned by a Client whose channel closed (the host
// rescinded it, the connection ended, or Close was called).
var ErrClosed = errors.New("echo: channel closed")

// Client is the echo VSC on one guest connection. Ping and Stream may be
// called from several goroutines, but only one Stream runs at a time.
type Client struct {
	ch        *channel.Channel
	cl        *guest.Client
	closed    chan struct{} // closed when the channel closed after opening
	ringPages int           // pages of each ring, control page included

	streamMu sync.Mutex
	stream   atomic.Pointer[streamState] // the running stream, nil outside one
	stray    atomic.Uint64               // packets outside any stream

	// rx is the receive buffer (UseRxBuffer); rxCopy is where the
	// receive goroutine copies each range before checking it.
	rx        *rxBuffer
	rxCopy    []byte
	rxPackets atomic.Uint64

	// held is the packets process checked and has not completed yet
	// (completeHeld): the receive goroutine's, or the Suspend's.
	held []*channel.Packet

	// broken is why the host's ring stopped, once it has; stopping is
	// the goroutine that then closes the channel, failing every request
	// in flight (their completions can no longer come).
	broken   atomic.Pointer[error]
	stopping sync.WaitGroup
}

// Open opens an echo channel of cl and waits until packets flow, or ctx
// ends, or the open fails.
func Open(ctx context.Context, cl *guest.Client, cfg ClientConfig) (*Client, error) {
	if cfg.RingPages <= 0 {
		cfg.RingPages = DefaultRingPages
	}
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	c := &Client{ch: channel.NewClient(), cl: cl, closed: make(chan struct{}), ringPages: cfg.RingPages, rxCopy: make([]byte, cfg.MaxPayload)}
	active := make(chan struct{})
	var once sync.Once
	err := firstErr(
		c.ch.SetClient(cl),
		c.ch.SetInterface(InterfaceType, cfg.Instance),
		c.ch.SetFriendlyName("echo"),
		c.ch.SetRingPages(cfg.RingPages, cfg.RingPages),
		c.ch.SetMaxPacketSize(cfg.MaxPayload),
		c.ch.SetMaxPacketCount(DefaultMaxPacketCount),
		c.ch.SetProcessPacketCallbacks(c.process, c.batchEnd),
		c.ch.SetIncomingStoppedCallback(c.incomingStopped),
		// process checks each payload once, inside the callback.
		c.ch.SetInPlacePayloads(true),
		c.ch.SetStateCallbacks(channel.StateCallbacks{
			PostStarted: func(*channel.Channel) { once.Do(func() { close(active) }) },
			Suspend:     func(*channel.Channel) { c.completeHeld() },
			Closed:      func(*channel.Channel) { closeOnce(c.closed) },
		}),
	)
	if err == nil {
		err = c.ch.Enable()
	}
	if err != nil {
		c.ch.Cleanup() //nolint:errcheck // the first error matters
		return nil, err
	}
	if err := waitOpen(ctx, c.ch, active); err != nil {
		c.Close() //nolint:errcheck // the first error matters
		return nil, err
	}
	return c, nil
}

// incomingStopped hears that the host broke the ring it answers on. On
// the receive goroutine, which closing the channel waits for: hence a
// goroutine of its own, which Close waits for.
func (c *Client) incomingStopped(_ *channel.Channel, err error) {
	broken := fmt.Errorf("echo: the host broke the channel: %w: %w", guest.ErrProtocol, err)
	c.broken.Store(&broken)
	c.stopping.Go(func() { c.ch.Disable() }) //nolint:errcheck // Close reports the channel's end
}

// hostErr is err, or why the host broke the channel if it did; a
// request the channel's close failed matches ErrClosed.
func (c *Client) hostErr(err error) error {
	if broken := c.broken.Load(); broken != nil {
		return *broken
	}
	if errors.Is(err, channel.StatusDeviceRemoved) || errors.Is(err, channel.StatusInvalidDeviceState) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// waitOpen waits for a client channel to become active: the channel
// layer opens it in the background and, on failure, leaves it Closed.
func waitOpen(ctx context.Context, ch *channel.Channel, active <-chan struct{}) error {
	t := time.NewTicker(openPoll)
	defer t.Stop()
	for {
		select {
		case <-active:
			return nil
		case <-t.C:
			// The channel has no "open failed" callback: Closed runs
			// only after a successful open. A failed open leaves the
			// state Closed.
			if ch.State() == channel.StateClosed {
				return fmt.Errorf("echo: open failed: %w", ErrClosed)
			}
		case <-ctx.Done():
			return fmt.Errorf("echo: waiting for the channel: %w", ctx.Err())
		}
	}
}

func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// Channel is the client channel, for state queries.
func (c *Client) Channel() *channel.Channel { return c.ch }

// Close closes the channel and waits until it is torn down. A running
// Stream ends with ErrClosed. It is idempotent.
func (c *Client) Close() error {
	c.stopping.Wait()
	err := c.ch.Cleanup()
	c.freeRx()
	return err
}

// process takes the packets the VSP sends back, on the receive goroutine.
func (c *Client) process(_ *channel.Channel, p *channel.Packet, payload []byte, flags channel.PacketFlags) {
	if flags&channel.PacketFlagTransferPages != 0 {
		c.receiveTransfer(c.stream.Load(), p)
		p.Complete(nil) // returns the ranges to the VSP
		return
	}
	if s := c.stream.Load(); s != nil {
		s.receive(payload)
	} else {
		c.stray.Add(1)
	}
	// Completed with the batch's others, at its end (batchEnd), or
	// once heldMax wait: one lock for them all (CompletePackets).
	c.held = append(c.held, p)
	if len(c.held) == heldMax {
		c.completeHeld()
	}
	if h := testHookHeld.Load(); h != nil {
		(*h)(c)
	}
}

// testHookHeld, if set, runs on the receive goroutine after process
// holds a packet.
var testHookHeld atomic.Pointer[func(*Client)]

// heldMax is the most packets the client holds for one CompletePackets:
// a quarter of its packet objects, so the channel never runs out of them
// in a batch.
const heldMax = DefaultMaxPacketCount / 4

// completeHeld completes the packets process checked. On the receive
// goroutine, or on the worker at a Suspend (that goroutine parked): a
// batch a pause stopped ends without ProcessingComplete.
func (c *Client) completeHeld() {
	if len(c.held) > 0 {
		c.ch.CompletePackets(c.held)
		clear(c.held)
		c.held = c.held[:0]
	}
}

// Stray is the number of packets the VSP sent outside any Stream (late
// answers of a stream that gave up waiting, or a misbehaving host).
func (c *Client) Stray() uint64 { return c.stray.Load() }
