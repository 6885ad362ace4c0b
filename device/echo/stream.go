package echo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govmbus/govmbus/channel"
)

// StreamConfig is one Stream run.
type StreamConfig struct {
	Payload int    // bytes per packet, at least HeaderSize
	Count   uint64 // packets
	// Window is how many packets may be sent and not yet back; zero
	// means as many as one of the client's rings holds (RingWindow).
	// A larger window lets packets wait in the channel's send queues,
	// which copies each once more.
	Window int
	// Idle is how long the stream waits without any packet coming back
	// before it counts the missing ones as lost; zero means DefaultIdle.
	// Stream looks every Idle/idleChecks, so it gives up after between
	// Idle and Idle+Idle/idleChecks of silence.
	Idle time.Duration
}

// DefaultIdle is StreamConfig.Idle when zero.
const DefaultIdle = 2 * time.Second

// RingWindow is how many in-band packets of payload bytes fit at once in
// a ring of pages pages, control page included (at least 1). A stream
// with this window never fills a ring: neither its packets nor the echo
// device's answers wait in a send queue.
func RingWindow(pages, payload int) int {
	return max(channel.RingCapacity(pages, payload), 1)
}

// streamBurstBytes bounds the bytes of a stream's send burst.
const streamBurstBytes = 8 << 10

// idleChecks is how many times per Idle Stream's goroutine wakes to
// refill and to look for progress.
const idleChecks = 8

// StreamResult is what Stream measured. Seconds runs from the first send
// to the last packet back (when packets are missing: to when the sender
// last saw one come back). Lost counts the packets sent that did not
// come back intact; a stream that ended early (an error) did not send the
// rest of its Count, and does not count them lost.
type StreamResult struct {
	Sent, Received, Lost, Duplicated, Corrupted uint64
	Seconds                                     float64
	PacketsPerSec, BytesPerSec                  float64
}

// notWaiting is streamState.wakeAt while the sender does not sleep.
const notWaiting = math.MaxUint64

// cacheLine separates the fields the receive goroutine writes per packet
// from those the sender goroutine touches.
const cacheLine = 128

// streamState is shared by Stream's goroutine, the receive goroutine
// (process and batchEnd) and the goroutines that complete sent packets.
//
// Sending is self-clocked: Stream fills the window, and then the receive
// goroutine refills it at the end of each ring batch (ProcessingComplete),
// where its sends are committed with the batch, one signal to the host for
// all of them. Stream's goroutine sleeps meanwhile, and wakes when the
// last packet is back (wakeAt), when a refill failed, when a packet is
// idle again after waiting for ring space (wantIdle), and every
// Idle/idleChecks to refill itself and to look for progress. The clock is
// read only there, once per wake-up.
type streamState struct {
	// The receive goroutine's, per packet.
	mu   sync.Mutex // held while checking
	done bool       // under mu: the stream ended, chk is Stream's
	chk  *Checker
	back atomic.Uint64 // packets back, intact or not
	_    [cacheLine]byte

	wakeAt   atomic.Uint64 // signal wake when back reaches it; notWaiting
	wantIdle atomic.Bool   // signal wake at the next completion
	wake     chan struct{} // capacity 1: a wake-up may be stale, waiters recheck

	// The sending side, whoever sends.
	sendMu  sync.Mutex
	k       *Packer
	bufs    [][]byte // a burst's packets, built by k
	burst   [][]byte // the part of bufs a TrySendBatch sends
	out     outRing  // owned by the holder of sendMu
	sent    uint64
	count   uint64
	window  uint64
	stopped bool  // no more sends: the stream ended or a send failed
	sendErr error // why sending stopped early, nil if it did not
	grow    func() error
	ch      *channel.Channel // TrySend first; a packet object when it does not fit
}

// receive checks one packet that came back, on the receive goroutine.
func (s *streamState) receive(payload []byte) {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return
	}
	s.chk.Check(payload)
	s.mu.Unlock()
	if n := s.back.Add(1); n >= s.wakeAt.Load() && s.wakeAt.Swap(notWaiting) != notWaiting {
		s.signal()
	}
}

// refill sends until the window is full, the count is reached or every
// packet waits for ring space. It never blocks.
func (s *streamState) refill() {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if s.stopped {
		return
	}
	back := s.back.Load()
	for s.sent < s.count && s.sent-back < s.window {
		// A burst at a time, in one TrySendBatch (burst.go says why).
		k := min(s.count-s.sent, s.window-(s.sent-back), uint64(len(s.bufs)))
		for i := range k {
			s.burst[i] = s.k.PacketIn(s.bufs[i], s.sent+i)
		}
		n, err := s.ch.TrySendBatch(s.burst[:k])
		if s.sent += uint64(n); err == nil {
			continue
		} else if !errors.Is(err, channel.StatusBufferOverflow) {
			if errors.Is(err, channel.StatusInvalidDeviceState) {
				err = fmt.Errorf("%w: %w", ErrClosed, err)
			}
			s.stopLocked(fmt.Errorf("echo: stream send %d: %w", s.sent, err))
			return
		}
		// The ring is full or packets wait in the send queue: a packet
		// object queues this one behind them.
		sl := s.out.take()
		if sl == nil {
			if uint64(s.out.len()) >= s.window {
				// Every packet waits in the channel's send queue; the
				// first completion wakes Stream's goroutine.
				s.wantIdle.Store(true)
				return
			}
			if err := s.grow(); err != nil {
				s.stopLocked(err)
				return
			}
			sl = s.out.take()
		}
		if err := sl.send(s.k.Packet(s.sent)); err != nil {
			if errors.Is(err, channel.StatusInvalidDeviceState) {
				err = fmt.Errorf("%w: %w", ErrClosed, err)
			}
			s.stopLocked(fmt.Errorf("echo: stream send %d: %w", s.sent, err))
			return
		}
		s.sent++
	}
}

// stopLocked ends sending with err and wakes Stream's goroutine. Must
// hold sendMu.
func (s *streamState) stopLocked(err error) {
	s.stopped, s.sendErr = true, err
	s.signal()
}

// sentDone is the completion routine of the stream's packets.
func (s *streamState) sentDone(op *channel.OutPacket, _ channel.Status, _ []byte) {
	slotOf(op).complete()
	if s.wantIdle.Load() && s.wantIdle.Swap(false) {
		s.signal()
	}
}

// signal wakes the sender if it sleeps (or makes its next sleep return
// at once: it rechecks what it waits for).
func (s *streamState) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// batchEnd is the ProcessingComplete callback: a ring batch was read.
func (c *Client) batchEnd(_ *channel.Channel, _ int) {
	c.completeHeld()
	if s := c.stream.Load(); s != nil {
		s.refill()
	}
}

// Stream sends cfg.Count packets of cfg.Payload bytes through the echo
// VSP, keeping up to cfg.Window of them in flight, each numbered and
// checksummed; the VSP sends each back as a packet, and a Checker verifies
// that every one came back once and intact. Loss, duplicates and
// corruption are results, not errors; the error reports a channel that
// closed, ctx, or a bad configuration.
func (c *Client) Stream(ctx context.Context, cfg StreamConfig) (StreamResult, error) {
	var res StreamResult
	if cfg.Payload < HeaderSize {
		return res, fmt.Errorf("echo: stream payload %d below the %d-byte header", cfg.Payload, HeaderSize)
	}
	if cfg.Window <= 0 {
		cfg.Window = RingWindow(c.ringPages, cfg.Payload)
	}
	if cfg.Idle <= 0 {
		cfg.Idle = DefaultIdle
	}
	c.streamMu.Lock()
	defer c.streamMu.Unlock()

	s := &streamState{
		chk:    NewChecker(cfg.Count, cfg.Payload),
		wake:   make(chan struct{}, 1),
		k:      NewPacker(cfg.Payload),
		ch:     c.ch,
		count:  cfg.Count,
		window: uint64(cfg.Window),
	}
	s.bufs = s.k.Buffers(max(1, min(burstLen, streamBurstBytes/cfg.Payload)))
	s.burst = make([][]byte, len(s.bufs))
	// A packet is idle again once in the ring; one waiting in the
	// channel's send queue (ring full) is not, so the ring of packets
	// grows on demand, up to the window.
	s.grow = func() error {
		op, err := c.ch.AllocatePacket()
		if err != nil {
			return err
		}
		op.SetCompletion(s.sentDone)
		s.out.insert(newOutSlot(op))
		return nil
	}
	defer func() {
		// No more sends; then every packet is freed once idle. The
		// channel fails queued packets when it closes. One a stalled
		// host never lets into the ring stays with the channel, which
		// frees it at Cleanup.
		s.sendMu.Lock()
		s.stopped = true
		s.sendMu.Unlock()
		deadline := time.Now().Add(cfg.Idle)
		for _, sl := range s.out.slots {
			for !sl.idle() {
				wait := time.Until(deadline)
				if wait <= 0 {
					return
				}
				s.wantIdle.Store(true)
				if sl.idle() {
					break
				}
				t := time.NewTimer(wait)
				select {
				case <-s.wake:
				case <-t.C:
				}
				t.Stop()
			}
			sl.op.Free()
		}
	}()
	for range min(cfg.Window, 64) {
		if err := s.grow(); err != nil {
			return res, err
		}
	}

	// The receive goroutine wakes this one when the last packet is back.
	s.wakeAt.Store(cfg.Count)
	c.stream.Store(s)
	defer c.stream.Store(nil)
	t := time.NewTimer(cfg.Idle)
	defer t.Stop()
	start := time.Now()
	lastBack, lastProgress := uint64(0), start
	var err error
	// sleep waits for a wake-up, a tick, the channel closing or ctx
	// ending. It reports false when the stream must stop: err says why,
	// or the peer went quiet for cfg.Idle.
	sleep := func() bool {
		t.Reset(cfg.Idle / idleChecks)
		select {
		case <-s.wake:
		case <-t.C:
		case <-c.closed:
			err = c.hostErr(ErrClosed)
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			return false
		}
		now := time.Now()
		if b := s.back.Load(); b != lastBack {
			lastBack, lastProgress = b, now
		}
		return now.Sub(lastProgress) < cfg.Idle
	}
	complete := false
	for {
		// Refilling here too covers a batch that ended without
		// ProcessingComplete (a pause) and sends waiting for ring space.
		s.refill()
		s.sendMu.Lock()
		sent, stopped := s.sent, s.stopped
		if stopped {
			err = s.sendErr
		}
		s.sendMu.Unlock()
		if stopped || sent == cfg.Count {
			// Now wait for what was sent.
			for s.back.Load() < sent {
				s.wakeAt.Store(sent)
				if s.back.Load() >= sent || !sleep() {
					break
				}
			}
			s.wakeAt.Store(notWaiting)
			complete = err == nil && s.back.Load() >= sent
			break
		}
		if !sleep() {
			break
		}
	}
	end := time.Now() // Stream's goroutine wakes at the last packet back
	if !complete {
		end = lastProgress
	}
	// Stop sending and counting: a receive still holding s sees done and
	// leaves chk alone.
	c.stream.Store(nil)
	s.sendMu.Lock()
	s.stopped = true
	sent := s.sent
	s.sendMu.Unlock()
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
	chk := s.chk
	res = StreamResult{
		Sent: sent, Received: chk.Received, Lost: sent - min(chk.Unique, sent),
		Duplicated: chk.Duplicated, Corrupted: chk.Corrupted,
		Seconds: end.Sub(start).Seconds(),
	}
	if res.Seconds > 0 {
		res.PacketsPerSec = float64(chk.Unique) / res.Seconds
		res.BytesPerSec = res.PacketsPerSec * float64(cfg.Payload)
	}
	return res, err
}
