package host

import (
	"context"
	"sync"
)

// pauser parks a guest's control-plane loop between two messages, so that
// its state can be saved while nothing changes it. The loop receives with
// a context that Pause cancels; a cancelled Recv leaves the connection
// usable and reads nothing, so every message either was handled before the
// save or is still in the socket for whoever serves the guest next.
type pauser struct {
	mu      sync.Mutex
	ctx     context.Context
	cancel  context.CancelFunc
	paused  bool
	stopped bool
	parked  chan struct{} // closed by the loop once it is parked
	resume  chan struct{} // closed by unpause or stop
}

func (p *pauser) init() {
	p.ctx, p.cancel = context.WithCancel(context.Background())
}

// context is what the loop's next Recv waits with.
func (p *pauser) context() context.Context {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ctx
}

// pause asks the loop to park and returns the channel closed once it has.
func (p *pauser) pause() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paused {
		p.paused = true
		p.parked = make(chan struct{})
		p.resume = make(chan struct{})
		p.cancel()
	}
	return p.parked
}

// park is the loop's side: it reports the loop parked and waits to be
// resumed. It returns false if the host stops meanwhile. A Recv cancelled
// by an earlier pause that was undone already just retries.
func (p *pauser) park() bool {
	p.mu.Lock()
	if !p.paused {
		stopped := p.stopped
		p.mu.Unlock()
		return !stopped
	}
	parked, resume := p.parked, p.resume
	p.mu.Unlock()
	select {
	case <-parked:
	default:
		close(parked)
	}
	<-resume
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.stopped
}

// isPaused reports whether a pause (for a save) is under way or the
// host stopped the loop.
func (p *pauser) isPaused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// unpause lets a parked loop receive again.
func (p *pauser) unpause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paused || p.stopped {
		return
	}
	p.paused = false
	p.ctx, p.cancel = context.WithCancel(context.Background())
	close(p.resume)
}

// stop ends a parked (or later parking) loop for good: the host closes.
func (p *pauser) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.stopped = true
	p.cancel()
	if p.paused {
		close(p.resume)
	} else {
		p.paused = true
		p.parked = make(chan struct{})
		p.resume = make(chan struct{})
		close(p.resume)
	}
}
