package channel

import (
	"errors"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// spin busy-waits for d: a gap between two packets that no sleep could
// make as short.
func spin(d time.Duration) {
	for t := time.Now(); time.Since(t) < d; {
	}
}

// TestPollSwitchNoLostWakeup ping-pongs requests and their completions
// between two polling channels, on the rings in mapped guest memory, with
// random gaps around the end of the poll budget on both sides: a packet
// lands now while the peer still polls, now right as its poll ends, now
// after it went to sleep. A wake-up lost at the switch from polling to
// sleeping leaves a request or its completion in a ring nobody reads: the
// request's timeout is the watchdog that fails the round instead of
// hanging the package.
func TestPollSwitchNoLostWakeup(t *testing.T) {
	const budget = 5 * time.Microsecond
	r := newRig(t)
	var srvRand = rand.New(rand.NewPCG(1, 2))
	s, c := r.pair(t, func(_ *Channel, p *Packet, payload []byte, _ PacketFlags) {
		spin(time.Duration(srvRand.Int64N(int64(budget / 2))))
		p.Complete(payload)
	}, ignore, StateCallbacks{}, StateCallbacks{})
	must(t, s.SetPoll(budget))
	must(t, c.SetPoll(budget))
	rnd := rand.New(rand.NewPCG(3, 4))
	req, resp := make([]byte, 8), make([]byte, 8)
	const watchdog = 2 * time.Second
	rounds, maxRounds, window := 0, 200000, 3*time.Second
	for start := time.Now(); rounds < maxRounds && time.Since(start) < window; rounds++ {
		spin(time.Duration(rnd.Int64N(int64(2 * budget))))
		req[0] = byte(rounds)
		if _, err := c.SendSynchronousRequest(req, nil, 0, resp, watchdog); err != nil {
			if errors.Is(err, StatusCancelled) {
				t.Fatalf("round %d: no completion within %v: a wake-up was lost at the switch from polling to sleeping\nclient %+v\nserver %+v",
					rounds, watchdog, c.Stats(), s.Stats())
			}
			t.Fatalf("round %d: %v", rounds, err)
		}
		if resp[0] != byte(rounds) {
			t.Fatalf("round %d: completion carries %d", rounds, resp[0])
		}
	}
	// The run is worth something only if both sides crossed the switch
	// both ways many times: polls that found the packet, polls that ran
	// out, and sleeps after them.
	for _, e := range []struct {
		name string
		st   Stats
	}{{"client", c.Stats()}, {"server", s.Stats()}} {
		t.Logf("%s: %d rounds, %d poll hits, %d poll misses, %d sleeps", e.name, rounds, e.st.PollHits, e.st.PollMisses, e.st.Sleeps)
		if e.st.PollHits < 10 || e.st.PollMisses < 10 || e.st.Sleeps < 10 {
			t.Errorf("%s: %d poll hits, %d misses, %d sleeps in %d rounds: the switch was not exercised", e.name, e.st.PollHits, e.st.PollMisses, e.st.Sleeps, rounds)
		}
	}
}

// TestPollIdleSleeps: once the packets stop, a polling channel's receive
// goroutine goes to sleep within its budget (here well within the test's
// bound) and an idle polled channel then costs no CPU.
func TestPollIdleSleeps(t *testing.T) {
	const budget = 5 * time.Millisecond
	r := newRig(t)
	s, c := r.pair(t, echo, ignore, StateCallbacks{}, StateCallbacks{})
	must(t, s.SetPoll(budget))
	must(t, c.SetPoll(budget))
	req, resp := make([]byte, 64), make([]byte, 64)
	for range 200 {
		_, err := c.SendSynchronousRequest(req, nil, 0, resp, NoTimeout)
		must(t, err)
	}
	if c.Stats().PollHits == 0 || s.Stats().PollHits == 0 {
		t.Fatalf("no poll found a packet: client %+v, server %+v", c.Stats(), s.Stats())
	}
	eventually(t, "both receive goroutines asleep", func() bool {
		return c.rxSleeping.Load() && s.rxSleeping.Load()
	})
	before := [2]Stats{c.Stats(), s.Stats()}
	cpu0 := processCPU(t)
	time.Sleep(time.Second) // the window measured, not a synchronisation
	cpu := processCPU(t) - cpu0
	after := [2]Stats{c.Stats(), s.Stats()}
	t.Logf("CPU of the idle process over 1 s: %v", cpu)
	// A goroutine still spinning would use most of a core.
	if cpu > 200*time.Millisecond {
		t.Errorf("idle polled channels used %v of CPU in 1 s", cpu)
	}
	for i, name := range []string{"client", "server"} {
		if after[i].PollHits+after[i].PollMisses != before[i].PollHits+before[i].PollMisses || after[i].Sleeps != before[i].Sleeps {
			t.Errorf("%s polled or woke while idle: before %+v, after %+v", name, before[i], after[i])
		}
	}
}

// processCPU is the CPU time this process used so far.
func processCPU(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	must(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestPollWakeRx: the channel's own wake-ups (here Pause's) end a poll at
// once instead of waiting for its budget: with a budget of a second grown
// to its full length, Pause returns with no poll having run out.
func TestPollWakeRx(t *testing.T) {
	r := newRig(t)
	s, c := r.pair(t, echo, ignore, StateCallbacks{}, StateCallbacks{})
	must(t, s.SetPoll(MaxPoll))
	req, resp := make([]byte, 64), make([]byte, 64)
	// The first round trips wake the server soon after it slept, which
	// sets its budget to the whole second; then each is a hit.
	for range 8 {
		_, err := c.SendSynchronousRequest(req, nil, 0, resp, NoTimeout)
		must(t, err)
	}
	must(t, s.Pause())
	if st := s.Stats(); st.PollMisses != 0 || st.PollHits == 0 {
		t.Fatalf("server polls: %d hits, %d ran out; want Pause to end the poll before its budget", st.PollHits, st.PollMisses)
	}
}

// TestPollerBudget follows the adaptive policy step by step.
func TestPollerBudget(t *testing.T) {
	const max = 16 * time.Microsecond
	var p poller
	if p.arm(0, true) || p.budget != 0 {
		t.Fatalf("polling off: armed with budget %v", p.budget)
	}
	t0 := time.Unix(1000, 0)
	steps := []struct {
		do   string
		want time.Duration
	}{
		{"idle", 0},       // nothing read: no poll
		{"work", 0},       // work, but no wake-up near it: no poll yet
		{"warm", max},     // woke with work soon after sleeping: the full budget
		{"miss", max / 2}, // each poll that runs out halves it
		{"hit", max},      // each one that finds a packet doubles it
		{"hit", max},      // up to the budget set
		{"miss", max / 2},
		{"miss", max / 4},
		{"work", max / 4}, // a batch without a wake-up changes nothing
		{"miss", max / 8},
		{"miss", max / 16},
		{"miss", 0},       // below the smallest rung: sleep at every batch's end
		{"cold", 0},       // woke with work long after sleeping: still none
		{"warm", max},     // the next packet close behind: polling again
		{"warmidle", max}, // a warm wake-up with no work changes nothing
		// Re-arms that find nothing back off: 0, 1, 3 warm wake-ups
		// skipped before the next.
		{"drain", 0},
		{"warm", max},
		{"drain", 0},
		{"warm", 0},
		{"warm", max},
		{"drain", 0},
		{"warm", 0}, {"warm", 0}, {"warm", 0},
		{"warm", max},
		{"hit", max}, // a hit forgets the backoff
		{"drain", 0},
		{"warm", max},
	}
	for i, st := range steps {
		switch st.do {
		case "work":
			p.arm(max, true)
		case "idle":
			if p.arm(max, false) {
				t.Fatalf("step %d: armed with nothing read", i)
			}
		case "warm", "cold", "warmidle":
			p.sleep(t0)
			after := warmWindow(max)
			if st.do == "cold" {
				after++
			}
			p.woke(t0.Add(after), max)
			p.arm(max, st.do != "warmidle")
		case "hit":
			p.hit(max)
		case "miss":
			p.miss(max)
		case "drain":
			for p.budget > 0 {
				p.miss(max)
			}
		}
		if p.budget != st.want {
			t.Fatalf("step %d (%s): budget %v, want %v", i, st.do, p.budget, st.want)
		}
	}
	// The backoff is capped: after many fruitless re-arms, one warm
	// wake-up in 2^pollBackoffMax still re-arms.
	for range 4 * pollBackoffMax {
		for p.budget > 0 {
			p.miss(max)
		}
		for range 1 << pollBackoffMax {
			p.sleep(t0)
			p.woke(t0, max)
			if p.arm(max, true) {
				break
			}
		}
		if p.budget != max {
			t.Fatalf("no re-arm within %d warm wake-ups (backoff %d)", 1<<pollBackoffMax, p.backoff)
		}
		p.budget = 0
	}
	// A smaller budget set while polling caps the current one.
	p.budget = max
	p.arm(max/4, true)
	if p.budget != max/4 {
		t.Fatalf("budget %v after SetPoll lowered it to %v", p.budget, max/4)
	}
}

// TestSetPoll checks its bounds.
func TestSetPoll(t *testing.T) {
	c := NewServer()
	for _, d := range []time.Duration{-1, MaxPoll + 1} {
		if err := c.SetPoll(d); !errors.Is(err, StatusInvalidParameter) {
			t.Errorf("SetPoll(%v) = %v, want StatusInvalidParameter", d, err)
		}
	}
	must(t, c.SetPoll(MaxPoll))
	if c.Poll() != MaxPoll {
		t.Fatalf("Poll() = %v", c.Poll())
	}
}
