package hosting

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// phasesEnv carries the predecessor's phase timings to its successor, so
// that the successor's "servicing complete" shows the whole servicing.
const phasesEnv = "GOVMBUS_SERVICING_PHASES"

// initDone is when this image's packages were initialised: a successor's
// exec step ends here, before its own start-up.
var initDone = time.Now()

// phases times the steps of a servicing, from the pause on: each mark
// ends the step of its name.
type phases struct {
	since time.Time // the pause
	last  time.Time // the end of the last step
	names []string
	ms    []float64
	first string // the name of the successor's first step of its own
}

func newPhases(since time.Time) *phases {
	return &phases{since: since, last: since, first: "startup"}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// mark ends step name.
func (p *phases) mark(name string) {
	now := time.Now()
	p.names = append(p.names, name)
	p.ms = append(p.ms, ms(now.Sub(p.last)))
	p.last = now
}

// handOn puts the steps so far, and the time of the exec, in the
// environment the successor inherits. The caller unsets it if the exec
// fails.
func (p *phases) handOn() {
	os.Setenv(phasesEnv, p.encode())
}

// encode is the steps so far and the time now (the start of the
// handover), as handOn passes them on.
func (p *phases) encode() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d", time.Now().UnixNano())
	for i, n := range p.names {
		fmt.Fprintf(&b, ";%s=%g", n, p.ms[i])
	}
	return b.String()
}

// inheritedPhases continues the predecessor's steps, if it handed them on
// (its exec starts the next step), or starts anew at
// paused. It clears the variable either way.
func inheritedPhases(paused time.Time) *phases {
	v, ok := os.LookupEnv(phasesEnv)
	if !ok {
		return newPhases(paused)
	}
	os.Unsetenv(phasesEnv)
	p, handed, ok := decodePhases(v, paused)
	if !ok {
		return p
	}
	// The exec step runs from the exec to the end of package
	// initialisation; the start-up step from there to the adoption.
	p.names = append(p.names, "exec")
	p.ms = append(p.ms, ms(initDone.Sub(handed)))
	p.last = initDone
	return p
}

// spawnedPhases continues the steps a predecessor passed to its spawned
// successor (Successor.Hand's note): the next step, the handover, runs
// from the predecessor's hand-over to the adoption.
func spawnedPhases(note string, paused time.Time) *phases {
	p, handed, ok := decodePhases(note, paused)
	if ok {
		p.last = handed
	}
	p.first = "handover"
	return p
}

// decodePhases reads what encode wrote: the steps, and when the handover
// started. ok is false (and p fresh) if v is malformed.
func decodePhases(v string, paused time.Time) (p *phases, handed time.Time, ok bool) {
	p = newPhases(paused)
	fields := strings.Split(v, ";")
	ns, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil {
		return p, time.Time{}, false
	}
	for _, f := range fields[1:] {
		n, val, found := strings.Cut(f, "=")
		x, err := strconv.ParseFloat(val, 64)
		if !found || err != nil {
			return newPhases(paused), time.Time{}, false
		}
		p.names = append(p.names, n)
		p.ms = append(p.ms, x)
	}
	return p, time.Unix(0, ns), true
}

// list is the steps as the events have them.
func (p *phases) list() []Phase {
	out := make([]Phase, len(p.names))
	for i, n := range p.names {
		d, err := fromMs(p.ms[i])
		if err != nil {
			d = 0 // a predecessor's malformed figure: shown as none
		}
		out[i] = Phase{Name: n, Duration: d}
	}
	return out
}
