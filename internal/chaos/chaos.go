package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// ErrConnect: the run could not connect to the host at all.
var ErrConnect = errors.New("chaos: cannot connect to the host")

// Config configures a run.
type Config struct {
	// Socket is the host's Unix socket path.
	Socket string
	// Seed seeds the PCG that decides every action and value.
	Seed uint64
	// Duration is how long the run misbehaves; it then drops its last
	// connection and returns.
	Duration time.Duration
	// MemorySize is each session's guest memory in bytes, a multiple of
	// 4096; zero means 1 MiB.
	MemorySize uint64
}

// Pacing. The run must stress the host, not the machine: a host that
// serves well-behaved guests beside it is what is judged, and on a small
// machine a chaos process that spins would starve them by itself.
const (
	// pause between two actions, at least and at most.
	minPause, maxPause = 1 * time.Millisecond, 4 * time.Millisecond
	// quietWait is how long an action that expects no answer waits for
	// one anyway.
	quietWait = 15 * time.Millisecond
	// answerWait is how long an action waits for an answer it expects.
	answerWait = 2 * time.Second
	// maybeWait is how long it waits for an answer that may or may not
	// come (a GPADL whose counts announce more than was sent).
	maybeWait = 200 * time.Millisecond
	// Sessions last this long at most (unless the host ends them).
	minSession, maxSession = 200 * time.Millisecond, 1500 * time.Millisecond
	// A signal flood: bursts of floodBurst signals, floodGap apart
	// (3,200 signals a second). What a flood costs the host is its
	// wake-ups, about one per burst since an eventfd coalesces: at 500
	// bursts a second a well-behaved guest streaming beside it on two
	// cores lost a fifth of its throughput, at 100 none measurable.
	floodBurst, floodGap = 32, 10 * time.Millisecond
)

// Run connects to the host at cfg.Socket and misbehaves for cfg.Duration
// (or until ctx ends), session after session, and reports what it tried
// and what the host did. It returns ErrConnect (and no report) if the
// first connection fails; a host that goes away later only shows in the
// report (failed reconnects), since judging the host is the caller's job.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.MemorySize == 0 {
		cfg.MemorySize = 1 << 20
	}
	if cfg.MemorySize%4096 != 0 || cfg.MemorySize < 64*4096 {
		return nil, fmt.Errorf("chaos: memory size %d: want a multiple of 4096, at least 256 KiB", cfg.MemorySize)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	rep := &Report{Seed: cfg.Seed}
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	first := true
	for ctx.Err() == nil {
		// One session in eight speaks the transport wrongly; the others
		// reach the control plane, a third of them through package guest.
		var err error
		switch k := rng.IntN(8); {
		case k == 0 && !first:
			err = transportSession(ctx, cfg, rng, rep)
		case k <= 3:
			err = clientSession(ctx, cfg, rng, rep)
		default:
			err = rawSession(ctx, cfg, rng, rep)
		}
		if err != nil {
			if first {
				return nil, fmt.Errorf("%w at %s: %v", ErrConnect, cfg.Socket, err)
			}
			rep.ConnectFailures++
			sleep(ctx, 50*time.Millisecond)
			continue
		}
		first = false
	}
	rep.Seconds = time.Since(start).Seconds()
	rep.finish()
	return rep, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// pause is the breath between two actions.
func pause(ctx context.Context, rng *rand.Rand) {
	sleep(ctx, minPause+time.Duration(rng.Int64N(int64(maxPause-minPause))))
}

// sessionLength picks how long a session misbehaves.
func sessionLength(rng *rand.Rand) time.Duration {
	return minSession + time.Duration(rng.Int64N(int64(maxSession-minSession)))
}
