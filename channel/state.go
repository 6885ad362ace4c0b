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
	return c.stateLocked()
}
