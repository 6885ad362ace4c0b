package channel

import (
	"sync/atomic"

	"github.com/govmbus/govmbus/ring"
)

// Stats is a snapshot of a channel's traffic counters and ring occupancy
// (Channel.Stats). Counters start at zero when the Channel is allocated
// and only grow; a restored channel (servicing) starts again at zero.
type Stats struct {
	// PacketsIn and BytesIn count the packets read from the incoming
	// ring (data packets and completions) and their payload bytes as
	// the ring carries them (padded to a multiple of 8).
	PacketsIn, BytesIn uint64
	// PacketsOut and BytesOut count the packets written to the outgoing
	// ring (data packets and completions) and their payload bytes,
	// padded likewise: one end's out is the other end's in.
	PacketsOut, BytesOut uint64
	// SignalsSent counts the signals to the peer. SignalsSuppressed
	// counts the commits (a batch's end, or a send outside a batch) after
	// which the peer needed no signal: it was busy reading, or did not
	// wait for ring space.
	SignalsSent, SignalsSuppressed uint64
	// EmptyWakeups counts the receive goroutine's wake-ups that found
	// nothing to read or to send: a few come from races, a run of them
	// from a peer flooding signals (the goroutine then pauses; see
	// floodWakeups).
	EmptyWakeups uint64
	// PollHits counts the polls (SetPoll) that found a packet before
	// their budget ran out, PollMisses those that ran out, and Sleeps
	// the receive goroutine's waits on its event, polling or not: on a
	// channel that polls well, Sleeps stays low while PollHits grows.
	PollHits, PollMisses, Sleeps uint64
	// IncomingStopped says why the channel stopped reading its incoming
	// ring for good (a corrupt ring, a packet past the channel's limits,
	// a packet the driver failed); empty while it reads. It is cleared
	// when the channel opens again.
	IncomingStopped string
	// IncomingErr is the error behind IncomingStopped, nil while the
	// channel reads. It matches a Status with errors.Is:
	// StatusDeviceRemoved for a ring the peer broke (and then also the
	// ring's error, such as ring.ErrCorrupt), StatusInvalidBufferSize for
	// a packet past the channel's limits, StatusInvalidParameter for a
	// packet of a type this layer does not take or one the driver failed.
	IncomingErr error
	// TransferPagesDropped counts the transfer-page packets the channel
	// dropped without a completion (a client: unknown set, a range
	// outside the buffer, overlapping ranges, past SetMaxExternalData; a
	// server takes none); the queue went on. TransferPagesDropReason is
	// why the last one was dropped.
	TransferPagesDropped    uint64
	TransferPagesDropReason string
	// Queued counts the packets and completions that found the outgoing
	// ring full (or others already waiting) and waited in the channel's
	// send queue.
	Queued uint64
	// CompletionsPending is the number of outgoing packets in the ring
	// that wait for the peer's completion.
	CompletionsPending int
	// InRingUsed and OutRingUsed are the bytes written and not yet read
	// in the incoming and outgoing rings, read from the rings' shared
	// indices at the snapshot; the sizes are the rings' data sizes. All
	// four are 0 while the channel is not open.
	InRingUsed, InRingSize   int
	OutRingUsed, OutRingSize int
	// Stall is the reason the last CheckStall found the channel stuck
	// (StallLostSignal, ...), "" if it did not (or none ran).
	Stall string
	// Unstuck counts the lost signals CheckStall signalled again.
	Unstuck uint64
}

// stats are a channel's counters. The per-packet paths pay no atomic
// operation and take no lock they did not take before: the send side
// counts under sendMu, which it holds anyway; the receive goroutine
// tallies a batch in plain fields and publishes the batch's totals with
// atomic adds when the batch ends.
type stats struct {
	// under sendMu
	outPackets, outBytes uint64
	sent, suppressed     uint64
	queued               uint64

	// the receive goroutine's tally of the current batch
	rxPackets, rxBytes, rxSignals uint64
	// published at the end of each batch
	inPackets, inBytes, inSignals atomic.Uint64
	// counted by the receive goroutine as they happen (rare, or once
	// per poll or sleep)
	emptyWakeups, floodPauses    atomic.Uint64
	pollHits, pollMisses, sleeps atomic.Uint64
	xferDropped                  atomic.Uint64
}

// wrote counts a packet of n payload bytes put in the outgoing ring. Must
// hold sendMu.
func (s *stats) wrote(n int) {
	s.outPackets++
	s.outBytes += uint64(ring.PayloadLen(n))
}

// commit counts a commit of the outgoing ring (or of both rings at a
// batch's end) and whether the peer must be signalled. Must hold sendMu.
func (s *stats) commit(sig bool) {
	if sig {
		s.sent++
	} else {
		s.suppressed++
	}
}

// read counts a packet of n payload bytes taken from the incoming ring.
// On the receive goroutine.
func (s *stats) read(n int) {
	s.rxPackets++
	s.rxBytes += uint64(n)
}

// publishRx adds the batch's tally to the published counters. On the
// receive goroutine, at the end of a batch.
func (s *stats) publishRx() {
	if s.rxPackets != 0 {
		s.inPackets.Add(s.rxPackets)
		s.inBytes.Add(s.rxBytes)
		s.rxPackets, s.rxBytes = 0, 0
	}
	if s.rxSignals != 0 {
		s.inSignals.Add(s.rxSignals)
		s.rxSignals = 0
	}
}

// Stats returns a snapshot of the channel's counters and ring occupancy.
// It is safe for concurrent use and cheap (no allocation; it walks the
// channel's outgoing packet objects under the send lock), meant for
// monitoring: the receive side's counters lag by at most the batch being
// read.
func (c *Channel) Stats() Stats {
	s := Stats{
		PacketsIn: c.st.inPackets.Load(),
		BytesIn:   c.st.inBytes.Load(),

		EmptyWakeups: c.st.emptyWakeups.Load(),
		PollHits:     c.st.pollHits.Load(),
		PollMisses:   c.st.pollMisses.Load(),
		Sleeps:       c.st.sleeps.Load(),

		TransferPagesDropped: c.st.xferDropped.Load(),
	}
	c.stallStats(&s)
	c.mu.Lock()
	s.IncomingStopped, s.IncomingErr = c.rxStopReason, c.rxStopErr
	s.TransferPagesDropReason = c.xferDropReason
	c.mu.Unlock()
	rxSignals := c.st.inSignals.Load()
	c.sendMu.Lock()
	s.PacketsOut, s.BytesOut = c.st.outPackets, c.st.outBytes
	s.SignalsSent, s.SignalsSuppressed = c.st.sent+rxSignals, c.st.suppressed
	s.Queued = c.st.queued
	for _, p := range c.outSlots {
		if p != nil && p.state == outInFlight {
			s.CompletionsPending++
		}
	}
	if ep := c.sendEP; ep != nil {
		s.InRingUsed, s.InRingSize = ep.r.Occupancy()
		s.OutRingUsed, s.OutRingSize = ep.w.Occupancy()
	}
	c.sendMu.Unlock()
	return s
}
