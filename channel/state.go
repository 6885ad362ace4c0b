package channel

// State is a channel's lifecycle state; see the package documentation for
// the state machines.
type State int

// States. Servers use Disabled, Enabled, Started, Stopped, Paused, Active
// (and Closed for a subchannel closed with its primary); clients
// Disabled, Enabled, Opened, Closed, Paused, Active.
const (
	StateDisabled State = iota
	StateEnabled
	StateStarted
	StateStopped
	StateOpened
	StatePaused
	StateActive
	StateClosed
)

var stateNames = [...]string{"Disabled", "Enabled", "Started", "Stopped", "Opened", "Paused", "Active", "Closed"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "State(?)"
}

// State is the channel's current state.
func (c *Channel) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ph.public()
}

// phase is an endpoint's lifecycle state, the one field that says where
// the channel is in the diagrams of the package documentation. It is
// State with the facts State does not show but the lifecycle needs: a
// paused channel may be open or not (phWaitPaused opens paused, phPaused
// closes to phWaitPaused), a disabled one may have a Pause armed for its
// next Enable, or may be freed. Only move changes it, under mu.
type phase uint8

const (
	phDisabled   phase = iota // allocated, or disabled: Set* allowed
	phArmed                   // disabled, and Pause was called: Enable brings it up paused
	phFreed                   // Cleanup ran; nothing more
	phEnabled                 // offered (server), or waiting for the offer (client; it starts once open)
	phStarted                 // server: Start came before the guest opened
	phWaitPaused              // enabled, not open, Pause called: it opens paused
	phStopped                 // server: open, not started
	phOpened                  // client: open; Started has yet to run (the worker's same turn)
	phActive                  // open and started
	phPaused                  // open and paused
	phClosed                  // client: the open channel went away or the open failed; subchannel: closed with its primary
	numPhases
)

var phaseNames = [numPhases]string{"Disabled", "Disabled(armed)", "Freed", "Enabled", "Started", "Paused(not open)", "Stopped", "Opened", "Active", "Paused", "Closed"}

func (p phase) String() string {
	if p < numPhases {
		return phaseNames[p]
	}
	return "phase(?)"
}

// public is the State a phase shows.
func (p phase) public() State {
	switch p {
	case phEnabled:
		return StateEnabled
	case phStarted:
		return StateStarted
	case phWaitPaused, phPaused:
		return StatePaused
	case phStopped:
		return StateStopped
	case phOpened:
		return StateOpened
	case phActive:
		return StateActive
	case phClosed:
		return StateClosed
	}
	return StateDisabled
}

// disabled: Set*, RestoreFromBuffer and Enable are allowed.
func (p phase) disabled() bool { return p == phDisabled || p == phArmed }

// enabled: between Enable and Disable.
func (p phase) enabled() bool { return p >= phEnabled }

// open: the peer opened the channel and Opened succeeded.
func (p phase) open() bool {
	return p == phStopped || p == phOpened || p == phActive || p == phPaused
}

// waiting: enabled, not open, and able to open (not closed for good).
func (p phase) waiting() bool { return p == phEnabled || p == phStarted || p == phWaitPaused }

// saveable: a server channel in this phase may be saved (SaveBegin):
// enabled and not started.
func (p phase) saveable() bool {
	return p == phEnabled || p == phWaitPaused || p == phStopped || p == phPaused
}

// event is what moves a phase.
type event uint8

const (
	evEnable  event = iota // Enable
	evDisable              // Disable, or an Enable that failed
	evCleanup              // Cleanup
	evStart                // Start, StartHeld (on the worker if open)
	evPause                // Pause (on the worker if open)
	evOpen                 // the channel opened: Opened succeeded (goLive)
	evRun                  // client: the worker starts the packets it opened (Started runs next)
	evShut                 // the open channel closed (closeOpen)
	evLost                 // closed for good: a client's open failed, a primary closed
	numEvents
)

var eventNames = [numEvents]string{"Enable", "Disable", "Cleanup", "Start", "Pause", "open", "run", "close", "loss"}

func (e event) String() string {
	if e < numEvents {
		return eventNames[e]
	}
	return "event(?)"
}

// transition is one arrow of a diagram.
type transition struct {
	from phase
	on   event
	to   phase
}

// serverMoves is the server's diagram (package documentation), arrow by
// arrow. Disable leads from every phase but phFreed to phDisabled (both
// tables add it).
var serverMoves = []transition{
	{phDisabled, evEnable, phEnabled},
	{phArmed, evEnable, phWaitPaused},
	{phDisabled, evPause, phArmed},
	{phArmed, evPause, phArmed},

	// Start and Pause before the guest opens record the wish.
	{phEnabled, evStart, phStarted},
	{phStarted, evStart, phStarted},
	{phWaitPaused, evStart, phStarted},
	{phEnabled, evPause, phWaitPaused},
	{phStarted, evPause, phWaitPaused},
	{phWaitPaused, evPause, phWaitPaused},

	// The guest opens; the wish decides where the channel lands.
	{phEnabled, evOpen, phStopped},
	{phStarted, evOpen, phActive},
	{phWaitPaused, evOpen, phPaused},

	{phStopped, evStart, phActive},
	{phActive, evStart, phActive},
	{phPaused, evStart, phActive},
	{phStopped, evPause, phPaused},
	{phActive, evPause, phPaused},
	{phPaused, evPause, phPaused},

	// The guest closes: the channel waits for the next open, as it was.
	{phStopped, evShut, phEnabled},
	{phActive, evShut, phStarted},
	{phPaused, evShut, phWaitPaused},

	// A subchannel whose primary closed.
	{phEnabled, evLost, phClosed},
	{phStarted, evLost, phClosed},
	{phWaitPaused, evLost, phClosed},
	{phClosed, evLost, phClosed},

	{phDisabled, evCleanup, phFreed},
	{phArmed, evCleanup, phFreed},
	{phFreed, evCleanup, phFreed},
}

// clientMoves is the client's diagram (package documentation).
var clientMoves = []transition{
	{phDisabled, evEnable, phEnabled},
	{phArmed, evEnable, phWaitPaused},
	{phDisabled, evPause, phArmed},
	{phArmed, evPause, phArmed},

	// A client starts by itself: Start before the open only undoes a
	// Pause.
	{phEnabled, evStart, phEnabled},
	{phWaitPaused, evStart, phEnabled},
	{phEnabled, evPause, phWaitPaused},
	{phWaitPaused, evPause, phWaitPaused},

	{phEnabled, evOpen, phOpened},
	{phWaitPaused, evOpen, phPaused},
	{phOpened, evRun, phActive},

	{phActive, evStart, phActive},
	{phPaused, evStart, phActive},
	{phActive, evPause, phPaused},
	{phPaused, evPause, phPaused},

	// The host rescinds, the connection is lost, the primary closes, or
	// the open fails: Closed until Disable.
	{phOpened, evShut, phClosed},
	{phActive, evShut, phClosed},
	{phPaused, evShut, phClosed},
	{phEnabled, evLost, phClosed},
	{phWaitPaused, evLost, phClosed},
	{phClosed, evLost, phClosed},

	{phDisabled, evCleanup, phFreed},
	{phArmed, evCleanup, phFreed},
	{phFreed, evCleanup, phFreed},
}

// moveTable maps a phase and an event to the phase it leads to, plus one;
// zero means no arrow.
type moveTable [numPhases][numEvents]phase

var moves = [2]moveTable{buildMoves(clientMoves), buildMoves(serverMoves)}

func buildMoves(ts []transition) (t moveTable) {
	for _, m := range ts {
		t[m.from][m.on] = m.to + 1
	}
	for p := phase(0); p < numPhases; p++ {
		if p != phFreed {
			t[p][evDisable] = phDisabled + 1
		}
	}
	return t
}

// next is the phase event e leads to from p on an endpoint of the given
// kind, and whether the diagram has that arrow.
func next(server bool, p phase, e event) (phase, bool) {
	k := 0
	if server {
		k = 1
	}
	to := moves[k][p][e]
	return to - 1, to != 0
}

// moveLocked makes the transition e from the channel's phase, the only
// way the phase changes. A transition the diagram lacks is refused with
// StatusInvalidDeviceState, naming what (the call) and the state, and
// leaves the phase as it was. Must hold mu.
func (c *Channel) moveLocked(what string, e event) error {
	to, ok := next(c.server, c.ph, e)
	if !ok {
		return fail(StatusInvalidDeviceState, "%s: channel is %v", what, c.ph.public())
	}
	c.ph = to
	return nil
}

// flow is the state of an open channel's incoming queue, the inner
// machine of the open phases (it is flowOff in all others). It is kept
// apart from phase because it moves without a lifecycle call
// (StopIndications, Release: servicing moves it for many channels at
// once, without the worker) and because the receive loop reads it, through
// its mirror rxRun, before and after every packet:
//
//	off            → live      activate: Started, the queue goes live, PostStarted
//	off            → heldPost  activate held (StartHeld): Started ran, PostStarted waits
//	live           → stopped   StopIndications (the first half of Pause)
//	stopped        → live      Start: no callbacks, Suspend did not run
//	stopped        → held      StartHeld: no callbacks either
//	held, heldPost → live      Release (PostStarted follows from heldPost)
//	held, heldPost → stopped   Pause or close before Release, so that Suspend follows
//	live, stopped  → off       deactivate: the loop parks, Suspend runs
//	any            → off       the channel opens (openEndpoint)
type flow uint8

const (
	flowOff      flow = iota // no packet is indicated; the lifecycle decides what comes
	flowLive                 // the receive loop indicates packets
	flowStopped              // StopIndications: none is indicated; Pause finishes the stop, Start undoes it
	flowHeld                 // StartHeld after StopIndications: Release makes it live
	flowHeldPost             // StartHeld: Started ran; Release makes it live and PostStarted follows
)

// held: StartHeld started the channel and Release has yet to come.
func (f flow) held() bool { return f == flowHeld || f == flowHeldPost }

// flowLocked moves the incoming queue to f, the only way it changes, and
// keeps rxRun, the receive loop's lock-free view of it, in step. Must
// hold mu.
func (c *Channel) flowLocked(f flow) {
	c.flow = f
	c.rxRun.Store(f == flowLive)
}
