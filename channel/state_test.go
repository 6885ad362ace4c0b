package channel

import (
	"errors"
	"testing"
)

// kmclStates are the states KMCL names per endpoint, plus Closed for a
// server subchannel closed with its primary.
var kmclStates = map[bool][]State{
	true:  {StateDisabled, StateEnabled, StateStarted, StateStopped, StatePaused, StateActive, StateClosed},
	false: {StateDisabled, StateEnabled, StateOpened, StateClosed, StatePaused, StateActive},
}

// reachable walks an endpoint's transitions from phDisabled.
func reachable(server bool) map[phase]bool {
	seen := map[phase]bool{phDisabled: true}
	todo := []phase{phDisabled}
	for len(todo) > 0 {
		p := todo[0]
		todo = todo[1:]
		for e := event(0); e < numEvents; e++ {
			if to, ok := next(server, p, e); ok && !seen[to] {
				seen[to] = true
				todo = append(todo, to)
			}
		}
	}
	return seen
}

// TestPhasesShowKMCLStates: every phase an endpoint can reach shows one
// of the states KMCL gives that endpoint, and every such state is
// reached.
func TestPhasesShowKMCLStates(t *testing.T) {
	for _, server := range []bool{true, false} {
		allowed := map[State]bool{}
		for _, s := range kmclStates[server] {
			allowed[s] = true
		}
		shown := map[State]bool{}
		for p := range reachable(server) {
			s := p.public()
			if !allowed[s] {
				t.Errorf("server %v: phase %v shows %v, not a state of the endpoint", server, p, s)
			}
			shown[s] = true
		}
		for s := range allowed {
			if !shown[s] {
				t.Errorf("server %v: no phase shows %v", server, s)
			}
		}
	}
}

// TestMoveRefusesWhatTheDiagramLacks: a transition the endpoint's table
// has no arrow for fails with StatusInvalidDeviceState and leaves the
// phase alone; one it has moves to the arrow's phase. Disable leads from
// every phase but the freed one to Disabled.
func TestMoveRefusesWhatTheDiagramLacks(t *testing.T) {
	for _, server := range []bool{true, false} {
		c := newChannel(server)
		arrows := map[[2]int]phase{}
		table := clientMoves
		if server {
			table = serverMoves
		}
		for _, m := range table {
			arrows[[2]int{int(m.from), int(m.on)}] = m.to
		}
		for p := phase(0); p < numPhases; p++ {
			for e := event(0); e < numEvents; e++ {
				want, ok := arrows[[2]int{int(p), int(e)}]
				if e == evDisable && p != phFreed {
					want, ok = phDisabled, true
				}
				c.ph = p
				err := c.moveLocked("test", e)
				switch {
				case ok && err != nil:
					t.Errorf("server %v: %v on %v refused: %v", server, e, p, err)
				case ok && c.ph != want:
					t.Errorf("server %v: %v on %v led to %v, want %v", server, e, p, c.ph, want)
				case !ok && !errors.Is(err, StatusInvalidDeviceState):
					t.Errorf("server %v: %v on %v: %v, want StatusInvalidDeviceState", server, e, p, err)
				case !ok && c.ph != p:
					t.Errorf("server %v: refused %v on %v moved to %v", server, e, p, c.ph)
				}
			}
		}
	}
}

// TestFlowMirror: rxRun, which the receive loop reads without mu, is
// true exactly while the incoming queue is live.
func TestFlowMirror(t *testing.T) {
	c := newChannel(true)
	for _, f := range []flow{flowLive, flowStopped, flowHeld, flowLive, flowHeldPost, flowOff} {
		c.flowLocked(f)
		if c.rxRun.Load() != (f == flowLive) {
			t.Fatalf("flow %d: rxRun %v", f, c.rxRun.Load())
		}
	}
}
