package pipe

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govmbus/govmbus/channel"
)

// Errors of a Conn besides ErrMalformed, net.ErrClosed (the Conn was
// closed) and os.ErrDeadlineExceeded (a deadline passed).
var (
	// ErrChannelClosed: the channel closed (the peer closed or rescinded
	// it, or went away) before the end of stream in that direction.
	ErrChannelClosed = errors.New("pipe: channel closed")
	// ErrWriteClosed: a Write after CloseWrite.
	ErrWriteClosed = errors.New("pipe: write after CloseWrite")
	// ErrMessageSize: in message mode, a Write larger than the maximum
	// data of a packet, or of nothing (an empty packet is the end of
	// stream: CloseWrite sends it).
	ErrMessageSize = errors.New("pipe: message size")
	// ErrShortBuffer: in message mode, a Read into a buffer smaller than
	// the next message. The message stays, whole, for a Read with a
	// buffer large enough.
	ErrShortBuffer = errors.New("pipe: buffer smaller than the message")
)

// Defaults of Config.
const (
	// DefaultMaxPackets is how many received packets a Conn holds
	// unread before the channel stops reading its ring.
	DefaultMaxPackets = 16
)

// Config configures a Conn. The zero value is the default.
type Config struct {
	// MaxData is the most data one written packet carries: Write splits
	// a byte-mode stream into packets of at most this much, and refuses
	// a longer message in message mode. 0 is MaxData; between 1 and
	// MaxData otherwise (LinuxMaxData writes as Linux's hv_sock does).
	// Received packets are accepted up to MaxData whatever this is.
	// The outgoing ring must hold one such packet (header, padding and
	// the ring's own 24 bytes): a Write on a ring too small for it fails
	// with the channel's StatusInvalidBufferSize.
	MaxData int
	// MaxPackets is how many received packets the Conn holds unread (the
	// channel's SetMaxPacketCount): the receive side's bound. 0 is
	// DefaultMaxPackets.
	MaxPackets int
}

// Conn is one pipe connection over a channel: a stream (byte mode) or a
// sequence of messages (message mode) in each direction, each direction
// ended on its own by CloseWrite's end of stream.
//
// Read and Write are safe for one reader and one writer at the same
// time (and more, which take turns); Close and the deadline setters may
// be called at any time from any goroutine, and Close unblocks both.
type Conn struct {
	ch      *channel.Channel
	maxData int

	// Set by the channel's Opened callback: the mode is known (a client
	// learns it from the offer) and writes may go.
	opened   chan struct{}
	openOnce sync.Once
	message  atomic.Bool // message mode
	gone     chan struct{}
	goneOnce sync.Once

	closed    atomic.Bool
	closeOnce sync.Once
	rdl, wdl  *deadline

	// The receive side (receive.go), under rmu.
	rmu      sync.Mutex
	readMu   sync.Mutex    // one Read at a time: one waits on rwake
	rwake    chan struct{} // a packet, the end or an error came
	q        []held        // received packets not yet read, oldest first
	qHead    int
	off      int   // bytes of q[qHead] already read (byte mode)
	rfin     bool  // the peer's end of stream came
	rerr     error // the receive side failed
	rclosed  bool  // Close ran: packets are completed as they come
	chClosed bool  // the channel closed
	// The direct function (SetDirect); the packets waiting for it are
	// held in q, and ddone and iov are its own arrays.
	waiting    bool // a Read waits
	deferred   bool // packets are held for the direct function, the Read not woken
	direct     DirectFunc
	ddone      []*channel.Packet
	iov        [][]byte
	maxPackets int
	// copies is how many queue entries a Suspend copied (they hold no
	// packet); while there are some, the channel's transaction quota
	// is maxPackets less them (setQuotaLocked), so that the Conn holds
	// no more than MaxPackets entries (and one) after a resumed pause.
	copies int
	// Packets a Read took to their end, completed once rmu is
	// released; under readMu. Its array holds the channel's packet
	// count, so that Read does not allocate.
	done []*channel.Packet

	// The send side, under wmu.
	wmu     sync.Mutex
	hdr     [HeaderSize]byte
	wclosed bool // the end of stream was sent
}

// New makes a pipe Conn of ch, a configured channel that is not enabled
// yet (server or client): it takes the channel's packets and its state
// callbacks (SetProcessPacketCallbacks, SetStateCallbacks) and sets the
// packet limits (SetMaxPacketSize, SetMaxPacketCount). The caller then
// enables the channel (and starts it, on a server) and disables it after
// Close: the channel stays the caller's. On a server the mode is the
// channel's (SetPipeMode before New); a client reads it from the offer
// when the channel opens, a mode other than message counting as byte.
func New(ch *channel.Channel, cfg Config) (*Conn, error) {
	maxData := cfg.MaxData
	if maxData == 0 {
		maxData = MaxData
	}
	if maxData < 1 || maxData > MaxData {
		return nil, fmt.Errorf("pipe: max data %d not in 1..%d", cfg.MaxData, MaxData)
	}
	packets := cfg.MaxPackets
	if packets == 0 {
		packets = DefaultMaxPackets
	}
	if packets < 1 {
		return nil, fmt.Errorf("pipe: max packets %d", cfg.MaxPackets)
	}
	c := &Conn{
		ch:         ch,
		maxData:    maxData,
		opened:     make(chan struct{}),
		gone:       make(chan struct{}),
		rdl:        newDeadline(),
		wdl:        newDeadline(),
		rwake:      make(chan struct{}, 1),
		q:          make([]held, 0, packets),
		done:       make([]*channel.Packet, 0, packets),
		ddone:      make([]*channel.Packet, 0, packets),
		iov:        make([][]byte, 0, packets),
		maxPackets: packets,
	}
	for _, err := range []error{
		ch.SetMaxPacketSize(HeaderSize + MaxData),
		ch.SetMaxPacketCount(packets),
		ch.SetProcessPacketCallbacks(c.process, c.onBatchEnd),
		ch.SetIncomingStoppedCallback(c.onIncomingStopped),
		ch.SetStateCallbacks(channel.StateCallbacks{Opened: c.onOpened, Suspend: c.onSuspend, Closed: c.onClosed}),
	} {
		if err != nil {
			return nil, fmt.Errorf("pipe: configure the channel: %w", err)
		}
	}
	return c, nil
}

// Channel is the Conn's channel.
func (c *Conn) Channel() *channel.Channel { return c.ch }

// MessageMode reports whether the Conn is in message mode; before the
// channel opened, a client does not know yet (false).
func (c *Conn) MessageMode() bool { return c.message.Load() }

// onOpened learns the mode as the channel opens.
func (c *Conn) onOpened(ch *channel.Channel) error {
	mode, _ := ch.PipeMode()
	c.message.Store(mode == channel.PipeMessage)
	c.openOnce.Do(func() { close(c.opened) })
	return nil
}

// Write writes b: in byte mode as packets of at most Config.MaxData,
// in message mode as one packet (ErrMessageSize if b is empty or larger).
// It blocks while the outgoing ring is full, until the peer reads, the
// write deadline passes (os.ErrDeadlineExceeded) or Close
// (net.ErrClosed); n counts the bytes whose packets went into the ring.
// Before the channel opens it waits for the open.
func (c *Conn) Write(b []byte) (n int, err error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writable(); err != nil {
		return 0, err
	}
	if c.message.Load() {
		if len(b) == 0 || len(b) > c.maxData {
			return 0, fmt.Errorf("%w: %d bytes, a message has 1 to %d", ErrMessageSize, len(b), c.maxData)
		}
		if err := c.send(b); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	for n < len(b) {
		chunk := b[n:min(len(b), n+c.maxData)]
		if err := c.send(chunk); err != nil {
			return n, err
		}
		n += len(chunk)
	}
	return n, nil
}

// CloseWrite sends the end of stream (a data packet of size 0) once: the
// peer's Read returns io.EOF after the data before it. Reads go on. It
// blocks as Write does; a second call does nothing.
func (c *Conn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed {
		return nil
	}
	if err := c.writable(); err != nil {
		return err
	}
	if err := c.send(nil); err != nil {
		return err
	}
	c.wclosed = true
	return nil
}

// writable checks the write side before a send, and waits for the open.
// Must hold wmu.
func (c *Conn) writable() error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	if c.wclosed {
		return ErrWriteClosed
	}
	if err := c.wdl.Err(); err != nil {
		return err
	}
	select {
	case <-c.gone:
		return ErrChannelClosed // a Conn is one open of its channel
	default:
	}
	select {
	case <-c.opened:
		return nil
	default:
	}
	select {
	case <-c.opened:
		return nil
	case <-c.gone:
		return ErrChannelClosed
	case <-c.wdl.Done():
		return c.wdl.Err()
	}
}

// send writes one packet with data, waiting for ring space as long as
// the write deadline allows. Must hold wmu.
func (c *Conn) send(data []byte) error {
	PutHeader(c.hdr[:], len(data))
	for {
		err := c.ch.TrySendParts(0, c.hdr[:], data)
		if err == nil {
			return nil
		}
		if !errors.Is(err, channel.StatusBufferOverflow) {
			return c.sendErr(err)
		}
		if err := c.ch.WaitSendSpace(c.wdl, HeaderSize+len(data)); err != nil {
			return c.sendErr(err)
		}
	}
}

// sendErr is what a failed send returns: the deadline's or Close's
// error as it is, a closed channel as ErrChannelClosed.
func (c *Conn) sendErr(err error) error {
	if derr := c.wdl.Err(); derr != nil && errors.Is(err, derr) {
		return derr
	}
	select {
	case <-c.gone:
		return fmt.Errorf("%w: %w", ErrChannelClosed, err)
	default:
	}
	if errors.Is(err, channel.StatusInvalidDeviceState) || errors.Is(err, channel.StatusDeviceRemoved) {
		return fmt.Errorf("%w: %w", ErrChannelClosed, err)
	}
	return fmt.Errorf("pipe: send: %w", err)
}

// SetDeadline sets both deadlines (net.Conn): a Read or Write waiting at
// t, or called after it, fails with os.ErrDeadlineExceeded. Zero means
// none.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rdl.set(t)
	c.wdl.set(t)
	return nil
}

// SetReadDeadline sets the read deadline (net.Conn).
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.rdl.set(t)
	return nil
}

// SetWriteDeadline sets the write deadline (net.Conn).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wdl.set(t)
	return nil
}

// Close ends the Conn: blocked and later Reads and Writes fail with
// net.ErrClosed, the packets held unread are completed (their data is
// dropped), and those that still come are completed as they come. If
// the end of stream was not sent it is sent if the ring has room now
// (Close does not wait for the peer). The channel is left to its owner
// to disable. Close is idempotent.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.rdl.end()
		c.wdl.end()
		c.wmu.Lock()
		if !c.wclosed {
			select {
			case <-c.opened:
				PutHeader(c.hdr[:], 0)
				if c.ch.TrySendParts(0, c.hdr[:]) == nil {
					c.wclosed = true
				}
			default:
			}
		}
		c.wmu.Unlock()
		c.dropHeld()
	})
	return nil
}
