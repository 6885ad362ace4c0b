package channel

import (
	"sync"
	"time"

	"github.com/govmbus/govmbus/ring"
)

// The reasons a channel is stalled (Stats.Stall, StallCheck.Reason), in
// the order CheckStall prefers them when several hold.
const (
	// StallLostSignal: a ring holds data its reader was not told of.
	// Either our receive loop sleeps, unmasked, on packets in the
	// incoming ring (the peer wrote without signalling, or the signal was
	// lost), or the peer sleeps, unmasked, on packets in the outgoing ring
	// that no signal of ours announced (it took one while it had masked
	// interrupts, and slept without looking again). A signal recovers it.
	StallLostSignal = "lost-signal"
	// StallPendingSendIgnored: our sends wait in the send queue for ring
	// space (the outgoing ring's pending send size is set), the space is
	// there, and the peer, which freed it, never signalled.
	StallPendingSendIgnored = "pending-send-ignored"
	// StallPeerNotReading: the outgoing ring holds data the peer does not
	// read, although it was told of it (or said it was reading, by
	// masking interrupts).
	StallPeerNotReading = "peer-not-reading"
	// StallOwedTransactions: packets sent with SendWaitForCompletion wait
	// for the peer's completion.
	StallOwedTransactions = "owed-transactions"
)

// StallReasons are the reasons, in CheckStall's order of preference.
var StallReasons = []string{StallLostSignal, StallPendingSendIgnored, StallPeerNotReading, StallOwedTransactions}

// DefaultStallAfter is the bound StallConfig.After gives when it is 0.
const DefaultStallAfter = 5 * time.Second

// StallConfig is how CheckStall judges a channel.
type StallConfig struct {
	// After is how long a condition must hold, with no progress, before
	// it is a stall (0: DefaultStallAfter).
	After time.Duration
	// Unstick signals a lost-signal stall's sleeper (the peer, or this
	// end's receive loop): only then, never for the other reasons.
	Unstick bool
}

// StallCheck is what one CheckStall found.
type StallCheck struct {
	// Reason is the stall, "" for none; Prev is the last check's.
	Reason, Prev string
	// Since is when the condition behind Reason was first seen.
	Since time.Time
	// In and Out are the control fields of the incoming and outgoing
	// rings as this check loaded them (zero while the channel is not
	// open). Out.WriteIndex is this end's own, not the shared field.
	In, Out ring.Control
	// Unstuck says this check signalled (StallConfig.Unstick).
	Unstuck bool
}

// stall is the state CheckStall keeps between checks, under its own
// lock: nothing on the packet paths reads or writes it.
type stall struct {
	mu sync.Mutex
	stallMarks
	reason  string
	since   time.Time
	unstuck uint64
}

// stallMarks are what a check compares the next one with.
type stallMarks struct {
	ep      *endpoint // the endpoint the marks below are of
	inRead  uint32    // incoming read index at the last check
	inPkts  uint64    // packets read at the last check
	outRead uint32    // outgoing read index at the last check
	// when each condition was first seen in its current run (zero: not
	// holding)
	inLost, outLost, notReading, pending time.Time
}

// held keeps *t at the first time a condition was seen while cond holds,
// and clears it otherwise; it reports whether the condition has held for
// at least after.
func held(t *time.Time, cond bool, now time.Time, after time.Duration) bool {
	if !cond {
		*t = time.Time{}
		return false
	}
	if t.IsZero() {
		*t = now
	}
	return now.Sub(*t) >= after
}

// CheckStall judges whether the channel is stuck, from the control fields
// of both rings (each loaded once and treated as the peer's word, not a
// fact), the receive loop's state and the outgoing packets, against what
// the last check saw. It is meant to run periodically (every second or
// so) from one monitoring goroutine; the packet paths pay nothing for it.
// A condition counts once it held for cfg.After with no progress. With
// cfg.Unstick, a lost signal is signalled again and counted
// (Stats.Unstuck). A channel that is not open, or not live, is not
// stalled.
func (c *Channel) CheckStall(now time.Time, cfg StallConfig) StallCheck {
	after := cfg.After
	if after <= 0 {
		after = DefaultStallAfter
	}
	d := &c.diag
	d.mu.Lock()
	defer d.mu.Unlock()
	res := StallCheck{Prev: d.reason}

	c.sendMu.Lock()
	ep := c.sendEP
	var (
		prog      ring.Progress
		owedSince time.Time
		queued    bool
	)
	if ep != nil {
		res.In, res.Out = ep.r.Control(), ep.w.Control()
		prog = ep.w.Progress()
		res.Out.WriteIndex = prog.WriteIndex
		queued = c.qHead != nil
		for _, p := range c.outSlots {
			if p == nil || p.state != outInFlight {
				continue
			}
			if p.diagTxid != p.txid || p.diagSeen.IsZero() {
				p.diagTxid, p.diagSeen = p.txid, now
			}
			if owedSince.IsZero() || p.diagSeen.Before(owedSince) {
				owedSince = p.diagSeen
			}
		}
	}
	c.sendMu.Unlock()
	if ep == nil || !c.rxRun.Load() {
		d.stallMarks, d.reason, d.since = stallMarks{}, "", time.Time{}
		return res
	}
	c.mu.Lock()
	blocked := c.rxBlocked || c.rxFailed
	c.mu.Unlock()
	inPkts := c.st.inPackets.Load()
	if d.ep != ep {
		// A new endpoint (opened again, restored): no marks to compare.
		d.stallMarks = stallMarks{ep: ep, inRead: res.In.ReadIndex, inPkts: inPkts, outRead: res.Out.ReadIndex}
	}
	inMoved := res.In.ReadIndex != d.inRead || inPkts != d.inPkts
	outMoved := res.Out.ReadIndex != d.outRead
	d.inRead, d.inPkts, d.outRead = res.In.ReadIndex, inPkts, res.Out.ReadIndex

	inUnread, inOK := res.In.Unread()
	outUnread, outOK := res.Out.Unread()
	// Our loop asleep, unmasked, on packets it could read.
	inLost := inOK && inUnread > 0 && res.In.InterruptMask == 0 && c.rxSleeping.Load() && !blocked && !inMoved
	// The peer unmasked, not reading, on packets it may not know of.
	outStuck := outOK && outUnread > 0 && !outMoved
	outLost := outStuck && res.Out.InterruptMask == 0 && !prog.Told(outUnread)
	// Only our own wait counts. The peer's pending send size on the
	// incoming ring proves nothing: a peer may leave it set for good
	// (Linux's hv_sock sets it once, at open), so a ring with that much
	// free would look stuck forever, and our reader signals at every
	// commit that crosses it anyway (ring.ReaderShouldSignal).
	pending := queued && res.Out.PendingSendMet()

	// Every run is brought up to date, whichever reason wins, so that
	// none keeps a start from before another's episode.
	lostIn := held(&d.inLost, inLost, now, after)
	lostOut := held(&d.outLost, outLost, now, after)
	ignored := held(&d.pending, pending, now, after)
	notReading := held(&d.notReading, outStuck && !outLost, now, after)
	switch {
	case lostIn || lostOut:
		res.Reason, res.Since = StallLostSignal, earliest(d.inLost, d.outLost)
	case ignored:
		res.Reason, res.Since = StallPendingSendIgnored, d.pending
	case notReading:
		res.Reason, res.Since = StallPeerNotReading, d.notReading
	case !owedSince.IsZero() && now.Sub(owedSince) >= after:
		res.Reason, res.Since = StallOwedTransactions, owedSince
	}
	if res.Reason == StallLostSignal && cfg.Unstick {
		// Each side signalled once per bound at most: its run starts
		// again, and a signal lost again is found again.
		if lostIn {
			c.wakeRx(ep)
			d.inLost = time.Time{}
		}
		if lostOut {
			ep.signal()
			d.outLost = time.Time{}
		}
		d.unstuck++
		res.Unstuck = true
	}
	if res.Reason != d.reason {
		d.since = res.Since
	}
	d.reason = res.Reason
	if res.Reason != "" {
		res.Since = d.since
	}
	return res
}

// earliest is the earlier of the times that are set.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// stallStats fills the stall fields of a Stats.
func (c *Channel) stallStats(s *Stats) {
	c.diag.mu.Lock()
	s.Stall, s.Unstuck = c.diag.reason, c.diag.unstuck
	c.diag.mu.Unlock()
}
