package hostchaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/govmbus/govmbus/transport"
)

// ErrListen: the hostile host could not listen on its socket.
var ErrListen = errors.New("hostchaos: cannot listen")

// Config configures a run.
type Config struct {
	// Socket is where guests connect.
	Socket string
	// Upstream is the real host's socket.
	Upstream string
	// Seed seeds every choice.
	Seed uint64
	// Duration is how long the run serves; it then disconnects every
	// guest and returns. Zero serves until the context ends.
	Duration time.Duration
	// Kinds, if set, are the only kinds of misbehaviour the run may try
	// (Kinds lists them all); nil allows every one.
	Kinds []string
}

// Pacing: what a session waits for and how long it waits.
const (
	// reactWindow is how long after an action the guest's next step is
	// counted as its reaction to it.
	reactWindow = 500 * time.Millisecond
	// minInject, maxInject bound the pause between two injected actions
	// (ring abuse, unasked messages) of a session.
	minInject, maxInject = 20 * time.Millisecond, 250 * time.Millisecond
	// maxDelay is the longest a delayed message is held.
	maxDelay = 2 * time.Second
	// maxPause is the longest a servicing-like pause lasts.
	maxPause = 1500 * time.Millisecond
	// upstreamWait bounds the dial of the real host.
	upstreamWait = 5 * time.Second
	// sendWait bounds each send to the guest or the real host, so that
	// a peer that does not read holds a session up for at most this.
	sendWait = 2 * time.Second
	// floodSignals is the size of a signal flood.
	floodSignals = 2000
)

// Upstream is the socket a real host listens on behind a hostile host on
// socket: the same path, ".up" added. Without chaos it is socket itself.
func Upstream(socket string, chaos bool) string {
	if chaos {
		return socket + ".up"
	}
	return socket
}

// Server is a hostile host listening for guests (Listen).
type Server struct {
	cfg Config
	l   *transport.Listener
}

// Listen listens on cfg.Socket; guests may connect once it returns. It
// returns an error matching ErrListen if it cannot.
func Listen(cfg Config) (*Server, error) {
	l, err := transport.Listen(cfg.Socket)
	if err != nil {
		return nil, fmt.Errorf("%w on %s: %w", ErrListen, cfg.Socket, err)
	}
	return &Server{cfg: cfg, l: l}, nil
}

// Run is Listen and Serve.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	srv, err := Listen(cfg)
	if err != nil {
		return nil, err
	}
	return srv.Serve(ctx), nil
}

// Serve serves guests through cfg.Upstream, misbehaving, until
// cfg.Duration has passed or ctx ends; then it stops listening,
// disconnects every guest, waits for its sessions to end and returns
// what it tried and what the guests did.
func (srv *Server) Serve(ctx context.Context) *Report {
	cfg, l := srv.cfg, srv.l
	start := time.Now()
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, start.Add(cfg.Duration))
		defer cancel()
	}
	rep := &Report{Seed: cfg.Seed}
	var sessions sync.WaitGroup
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for n := uint64(0); ; n++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			rng := sessionRng(cfg.Seed, n)
			sessions.Add(1)
			go func() {
				defer sessions.Done()
				s := newSession(ctx, n, rng, c, cfg.Upstream, cfg.Kinds)
				s.run()
				rep.merge(s)
			}()
		}
	}()
	<-ctx.Done()
	l.Close()
	<-accepted
	sessions.Wait()
	rep.Seconds = time.Since(start).Seconds()
	rep.finish()
	return rep
}

// sessionRng is the PCG of session n of a run seeded with seed: every
// choice of the session comes from it.
func sessionRng(seed, n uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, n^0x9e3779b97f4a7c15))
}

// Runner is a run started beside a host (Start).
type Runner struct {
	cancel context.CancelFunc
	done   chan error
	ended  chan struct{}
}

// Start listens and serves on its own goroutine when on is set, guests connecting
// on socket and the real host behind it on Upstream(socket, true), and
// prints its report to out when it ends, as JSON if asJSON. With on
// unset it returns nil, whose Done never delivers and whose Stop does
// nothing.
func Start(ctx context.Context, on bool, socket string, cfg Config, out io.Writer, asJSON bool) *Runner {
	if !on {
		return nil
	}
	cfg.Socket, cfg.Upstream = socket, Upstream(socket, true)
	ctx, cancel := context.WithCancel(ctx)
	r := &Runner{cancel: cancel, done: make(chan error, 1), ended: make(chan struct{})}
	srv, err := Listen(cfg)
	if err != nil {
		close(r.ended)
		r.done <- err
		return r
	}
	go func() {
		defer close(r.ended)
		rep := srv.Serve(ctx)
		if asJSON {
			err = json.NewEncoder(out).Encode(rep)
		} else {
			err = rep.WriteText(out)
		}
		r.done <- err
	}()
	return r
}

// Done delivers the run's end: nil once its report is printed, or why it
// failed.
func (r *Runner) Done() <-chan error {
	if r == nil {
		return nil
	}
	return r.done
}

// Stop ends the run (its report is printed) and waits for it.
func (r *Runner) Stop() {
	if r == nil {
		return
	}
	r.cancel()
	<-r.ended
}
