package channel

import (
	"runtime"
	"time"
)

// MaxPoll is the longest poll budget SetPoll takes: past it a spinning
// loop costs more than the wake-up it saves.
const MaxPoll = time.Second

// pollRungs is how many halvings of the budget stay above zero: a budget
// below max>>pollRungs is none.
const pollRungs = 4

// pollCheckEvery is how many looks at the ring the poll takes between
// reads of the clock: a look is one load of a shared index, the clock
// costs several.
const pollCheckEvery = 16

// SetPoll sets the channel's poll budget, for both endpoints alike: after
// a batch, the receive goroutine keeps the incoming ring's interrupts
// masked and spins on the ring for up to d (less as polls find nothing:
// the package doc's Polling) before it unmasks them and sleeps on its
// event. A peer writing meanwhile sees the
// mask and sends no signal, and the packet is read without a wake-up on
// either side. 0 (the default) never polls. Negative budgets and budgets
// past MaxPoll fail with StatusInvalidParameter.
//
// Unlike the other Set* functions, SetPoll may be called at any time,
// from any goroutine: the receive goroutine reads the budget at the end
// of each batch.
func (c *Channel) SetPoll(d time.Duration) error {
	if d < 0 || d > MaxPoll {
		return fail(StatusInvalidParameter, "poll budget %v: want 0 to %v", d, MaxPoll)
	}
	c.pollMax.Store(int64(d))
	return nil
}

// Poll is the poll budget SetPoll set.
func (c *Channel) Poll() time.Duration { return time.Duration(c.pollMax.Load()) }

// pollWarmSlack widens the warm window (warmWindow) past four budgets by
// what two wake-ups cost (vmbus bench floor): while the peer sleeps too,
// a round trip takes that long whatever the budget, and only once one
// side polls can the other see its answers come within a budget.
const pollWarmSlack = 250 * time.Microsecond

// warmWindow is how soon after going to sleep a wake-up with work must
// come for the channel to re-arm its full budget.
func warmWindow(max time.Duration) time.Duration { return 4*max + pollWarmSlack }

// pollBackoffMax caps the warm re-arms' backoff: after that many
// fruitless ones in a row, one warm wake-up in 2^pollBackoffMax re-arms.
const pollBackoffMax = 6

// poller is the receive goroutine's adaptive poll budget. A poll that
// finds a packet doubles it (up to the budget SetPoll set); one that runs
// out halves it, and below the smallest rung (max>>pollRungs) it is zero:
// the goroutine then sleeps at the end of every batch, as without
// polling. A wake-up that finds work within the warm window of going to
// sleep re-arms the full budget: packets come close together, so polling
// would catch the next one once the peer's answers no longer wait for
// its own wake-up. Re-arms back off: until a poll finds a packet again,
// each one skips twice as many warm wake-ups as the last (at most
// 2^pollBackoffMax-1), so that a peer which never answers within a
// budget (it does not poll, or this machine is too loaded to let it run)
// costs ever fewer spins. So an idle channel spins for at most one
// budget after its last packet and then costs nothing; a channel whose
// packets come less often than the warm window never polls; and one
// whose answers do not come within a budget spins, after the first few,
// about one budget per 2^pollBackoffMax packets for nothing.
type poller struct {
	budget time.Duration
	// masked: batchDone left the incoming ring's interrupts masked for
	// the poll that follows.
	masked bool
	slept  time.Time // when the goroutine last went to sleep (polling on)
	warm   bool      // it woke within the warm window since
	// backoff is how many re-arms in a row found nothing since the last
	// hit; skip is how many warm wake-ups to let pass before the next.
	backoff, skip int
}

// sleep notes the goroutine going to sleep at now.
func (p *poller) sleep(now time.Time) { p.slept = now }

// woke notes its wake-up at now.
func (p *poller) woke(now time.Time, max time.Duration) {
	p.warm = max > 0 && now.Sub(p.slept) <= warmWindow(max)
}

// arm decides, at the end of a batch, whether to poll before sleeping.
// worked says the batch read packets. It returns whether to poll.
func (p *poller) arm(max time.Duration, worked bool) bool {
	if max <= 0 {
		p.budget, p.warm = 0, false
		return false
	}
	if worked && p.warm && p.budget < max {
		if p.skip > 0 {
			p.skip--
		} else {
			p.budget = max
			p.skip = 1<<p.backoff - 1
			p.backoff = min(p.backoff+1, pollBackoffMax)
		}
	}
	p.warm = false
	p.budget = min(p.budget, max)
	return p.budget > 0
}

// hit grows the budget after a poll that found a packet, and forgets the
// re-arms' backoff.
func (p *poller) hit(max time.Duration) {
	p.budget = min(2*p.budget, max)
	p.backoff, p.skip = 0, 0
}

// miss shrinks it after a poll that ran out.
func (p *poller) miss(max time.Duration) {
	if p.budget /= 2; p.budget < max>>pollRungs || p.budget <= 0 {
		p.budget = 0
	}
}

// poll is the receive goroutine's spin between a batch and its sleep,
// with the incoming ring's interrupts still masked (batchDone left
// them). It returns true when the loop should go on instead of sleeping:
// a packet arrived, the channel woke its own loop (wakeRx), or a packet
// slipped in while the poll ended.
//
// The end of a poll is the one place a wake-up can be lost: a writer
// that published while the mask was still set sent no signal. So the
// poll ends the way every batch does: it clears the mask with a swap (a
// full barrier, ring's publish) and only then loads the write index once
// more (EnableInterrupts). A writer's publish is a swap too, followed by
// its load of the mask: either the writer sees the mask clear and
// signals, or this load sees its packet. Only then may the loop sleep.
func (c *Channel) poll(ep *endpoint) bool {
	p := &c.pl
	p.masked = false
	max := time.Duration(c.pollMax.Load())
	start := time.Now()
	for i := 1; ; i++ {
		if ep.r.Poll() {
			c.st.pollHits.Add(1)
			p.hit(max)
			return true // masked still: the batch reads with it set
		}
		if c.rxKick.Load() {
			break
		}
		if i%pollCheckEvery == 0 && time.Since(start) >= p.budget {
			c.st.pollMisses.Add(1)
			p.miss(max)
			break
		}
		// The goroutine this loop's last batch woke (a sender waiting
		// for its completion) was put first in line on this P: let it
		// run now rather than when a thread steals it. At every look:
		// yielding once per 256 looks instead (each yield also wakes an
		// idle thread) measured no better, in round trips or CPU.
		runtime.Gosched()
	}
	more, err := ep.r.EnableInterrupts()
	return more || err != nil || c.rxKick.Load()
}

// wakeRx wakes the channel's own receive goroutine, asleep on its event
// or polling.
func (c *Channel) wakeRx(ep *endpoint) {
	c.rxKick.Store(true)
	ep.in.Signal() //nolint:errcheck // a closed event means the channel is going
}
