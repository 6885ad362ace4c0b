package echo

import (
	"context"
	"errors"
	"fmt"
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
	// means DefaultWindow.
	Window int
	// Idle is how long the stream waits without any packet coming back
	// before it counts the missing ones as lost; zero means DefaultIdle.
	Idle time.Duration
}

// Stream defaults.
const (
	DefaultWindow = 1024
	DefaultIdle   = 2 * time.Second
)

// StreamResult is what Stream measured. Seconds runs from the first send
// to the last packet back.
type StreamResult struct {
	Sent, Received, Lost, Duplicated, Corrupted uint64
	Seconds                                     float64
	PacketsPerSec, BytesPerSec                  float64
}

// streamState is shared by the sender (Stream's goroutine) and the
// receive goroutine (process).
type streamState struct {
	mu      sync.Mutex // the receive goroutine holds it while it checks
	done    bool       // under mu: the stream ended, chk is the sender's
	chk     *Checker
	back    atomic.Uint64
	waiting atomic.Bool
	wake    chan struct{}
	last    atomic.Int64 // time of the last packet back, UnixNano
}

func (s *streamState) receive(payload []byte) {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return
	}
	s.chk.Check(payload)
	s.mu.Unlock()
	// Reading the clock per packet cost 9% of a 64-byte stream: the
	// idle detector needs it only when the sender waits, and now and
	// then.
	n := s.back.Add(1)
	if s.waiting.Load() {
		s.last.Store(time.Now().UnixNano())
		select {
		case s.wake <- struct{}{}:
		default:
		}
	} else if n%256 == 0 {
		s.last.Store(time.Now().UnixNano())
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
		cfg.Window = DefaultWindow
	}
	if cfg.Idle <= 0 {
		cfg.Idle = DefaultIdle
	}
	c.streamMu.Lock()
	defer c.streamMu.Unlock()

	// Sent packets are idle again once in the ring; one waiting in the
	// channel's send queue (ring full) is not, hence a pool.
	free := make(chan *channel.OutPacket, cfg.Window)
	var all []*channel.OutPacket
	defer func() {
		// A packet is idle once back in the pool; the channel fails
		// queued ones when it closes. One a stalled host never lets into
		// the ring stays with the channel, which frees it at Cleanup.
		t := time.NewTimer(cfg.Idle)
		defer t.Stop()
		for range all {
			select {
			case op := <-free:
				op.Free()
			case <-t.C:
				return
			}
		}
	}()
	for range min(cfg.Window, 64) {
		op, err := c.newStreamPacket(free)
		if err != nil {
			return res, err
		}
		all = append(all, op)
		free <- op
	}

	s := &streamState{chk: NewChecker(cfg.Count, cfg.Payload), wake: make(chan struct{}, 1)}
	c.stream.Store(s)
	defer c.stream.Store(nil)
	k := NewPacker(cfg.Payload)
	t := time.NewTimer(cfg.Idle)
	defer t.Stop()
	start := time.Now()
	s.last.Store(start.UnixNano())
	var err error
	window := uint64(cfg.Window)
	// waitBack waits until fewer than limit packets are out, the peer
	// went quiet for cfg.Idle, the channel closed or ctx ended.
	waitBack := func(sent, limit uint64) (ok bool) {
		for sent-s.back.Load() >= limit && sent > 0 {
			s.waiting.Store(true)
			if sent-s.back.Load() < limit {
				s.waiting.Store(false)
				break
			}
			idle := cfg.Idle - time.Since(time.Unix(0, s.last.Load()))
			if idle <= 0 {
				s.waiting.Store(false)
				return false
			}
			t.Reset(idle)
			select {
			case <-s.wake:
			case <-t.C:
			case <-c.closed:
				err = ErrClosed
			case <-ctx.Done():
				err = ctx.Err()
			}
			s.waiting.Store(false)
			if err != nil {
				return false
			}
		}
		return true
	}
	var sent uint64
	for sent < cfg.Count {
		if sent-s.back.Load() >= window && !waitBack(sent, window) {
			break
		}
		var op *channel.OutPacket
		select {
		case op = <-free:
		default:
			if len(all) < cfg.Window {
				if op, err = c.newStreamPacket(free); err != nil {
					break
				}
				all = append(all, op)
			} else {
				op = <-free // a queued packet reaches the ring soon, or the channel closes
			}
		}
		if err != nil {
			break
		}
		if serr := op.Send(k.Packet(sent), 0); serr != nil {
			free <- op
			if errors.Is(serr, channel.StatusInvalidDeviceState) {
				serr = fmt.Errorf("%w: %w", ErrClosed, serr)
			}
			err = fmt.Errorf("echo: stream send %d: %w", sent, serr)
			break
		}
		sent++
	}
	complete := err == nil && waitBack(sent, 1)
	end := time.Now() // the sender wakes at the last packet back
	if !complete {
		end = time.Unix(0, s.last.Load())
	}
	// Stop counting: a receive still holding s sees done and leaves chk
	// alone.
	c.stream.Store(nil)
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
	chk := s.chk
	res = StreamResult{
		Sent: sent, Received: chk.Received, Lost: cfg.Count - chk.Unique,
		Duplicated: chk.Duplicated, Corrupted: chk.Corrupted,
		Seconds: end.Sub(start).Seconds(),
	}
	if res.Seconds > 0 {
		res.PacketsPerSec = float64(chk.Unique) / res.Seconds
		res.BytesPerSec = res.PacketsPerSec * float64(cfg.Payload)
	}
	return res, err
}

func (c *Client) newStreamPacket(free chan *channel.OutPacket) (*channel.OutPacket, error) {
	op, err := c.ch.AllocatePacket()
	if err != nil {
		return nil, err
	}
	op.SetCompletion(func(op *channel.OutPacket, _ channel.Status, _ []byte) { free <- op })
	return op, nil
}
