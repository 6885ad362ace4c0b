package echo

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/govmbus/govmbus/channel"
)

// PingFromCompletion is Ping with every request after the first sent by
// the completion routine of the one before, on the channel's receive
// goroutine. Ping's caller waits in SendSynchronousRequest, so each of its
// round trips ends with the receive goroutine waking the caller's, a
// hand-off that on a machine with an idle core wakes a second thread; a
// driver that works in its completion routines, as a KMCL driver does,
// pays no such hand-off, and this measures what it gets: the ring, the
// two signals and the two receive goroutines' wake-ups.
//
// The results and errors are Ping's, with one difference in what counts
// as lost: the calling goroutine looks at the request in flight every
// timeout/4, so a request is given up between timeout and 1.25×timeout
// after it was sent, and the next goes out on a packet of its own (a late
// answer to the one given up is ignored). A timeout of 0 or less waits
// without limit, until the channel closes or ctx ends.
func (c *Client) PingFromCompletion(ctx context.Context, count, payload int, timeout time.Duration) (PingResult, error) {
	if payload < HeaderSize {
		payload = HeaderSize
	}
	pc := &pingChain{c: c, k: NewPacker(payload), count: count,
		lat: make([]time.Duration, 0, count), done: make(chan struct{})}
	start, cpu := time.Now(), processCPU()
	pc.mu.Lock()
	pc.nextPacketLocked()
	pc.mu.Unlock()
	var tick <-chan time.Time
	if timeout > 0 {
		t := time.NewTicker(max(timeout/4, time.Millisecond))
		defer t.Stop()
		tick = t.C
	}
	for waiting := true; waiting; {
		select {
		case <-pc.done:
			waiting = false
		case <-ctx.Done():
			pc.mu.Lock()
			pc.cur = nil // in flight: its completion frees it
			pc.finishLocked(ctx.Err())
			pc.mu.Unlock()
			waiting = false
		case now := <-tick:
			pc.mu.Lock()
			if !pc.ended && now.Sub(pc.t0) >= timeout {
				// Given up: the packet stays with its late answer, whose
				// completion frees it; the next request takes a new one.
				pc.res.Lost++
				pc.cur = nil
				if pc.res.Sent == uint64(pc.count) {
					pc.finishLocked(nil)
				} else {
					pc.nextPacketLocked()
				}
			}
			pc.mu.Unlock()
		}
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	res := pc.res
	res.finish(start, cpu, pc.lat)
	return res, pc.err
}

// pingChain is one PingFromCompletion: the calling goroutine and the
// completion routine share it under mu.
type pingChain struct {
	c     *Client
	k     *Packer
	count int
	done  chan struct{} // closed when the chain ends

	mu    sync.Mutex
	cur   *channel.OutPacket // the packet whose answer counts; nil once ended
	req   []byte             // the request in flight (the packer's buffer)
	t0    time.Time          // when it was sent
	res   PingResult
	lat   []time.Duration
	err   error
	ended bool
}

// completed is the completion routine of the chain's packets: it checks
// the answer, times it, and sends the next request on the same packet.
// A packet that is not the current one was given up (or the chain ended):
// it is freed.
func (pc *pingChain) completed(p *channel.OutPacket, st channel.Status, resp []byte) {
	now := time.Now()
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if p != pc.cur {
		p.Free()
		return
	}
	if st != channel.StatusSuccess {
		pc.res.Sent--
		pc.finishLocked(fmt.Errorf("echo: ping %d: %w", pc.res.Sent, pc.c.hostErr(st)))
		return
	}
	pc.res.Received++
	if !echoed(resp, pc.req) {
		pc.res.Corrupted++
	} else {
		pc.lat = append(pc.lat, now.Sub(pc.t0))
	}
	pc.sendLocked()
}

// nextPacketLocked sends the next request on a new packet. Must hold mu.
func (pc *pingChain) nextPacketLocked() {
	p, err := pc.c.ch.AllocatePacket()
	if err != nil {
		pc.finishLocked(fmt.Errorf("echo: ping %d: %w", pc.res.Sent, pc.c.hostErr(err)))
		return
	}
	p.SetCompletion(pc.completed)
	pc.cur = p
	pc.sendLocked()
}

// sendLocked sends the next request on the current packet, or ends the
// chain after the last. Must hold mu; the packet must be idle.
func (pc *pingChain) sendLocked() {
	if pc.res.Sent == uint64(pc.count) {
		pc.finishLocked(nil)
		return
	}
	pc.req = pc.k.Packet(pc.res.Sent)
	pc.t0 = time.Now()
	if err := pc.cur.Send(pc.req, channel.SendWaitForCompletion); err != nil {
		pc.finishLocked(fmt.Errorf("echo: ping %d: %w", pc.res.Sent, pc.c.hostErr(err)))
		return
	}
	pc.res.Sent++
}

// finishLocked ends the chain once, with err (nil: every request was
// answered or given up), and frees the current packet: a caller whose
// packet is in flight gives it up first (cur nil), and its completion
// frees it. Must hold mu.
func (pc *pingChain) finishLocked(err error) {
	if pc.ended {
		return
	}
	pc.ended, pc.err = true, err
	if p := pc.cur; p != nil {
		pc.cur = nil
		p.Free()
	}
	close(pc.done)
}
