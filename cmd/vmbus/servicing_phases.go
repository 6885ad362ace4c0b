package main

import (
	"fmt"
	"log/slog"
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
}

func newPhases(since time.Time) *phases {
	return &phases{since: since, last: since}
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
	var b strings.Builder
	fmt.Fprintf(&b, "%d", time.Now().UnixNano())
	for i, n := range p.names {
		fmt.Fprintf(&b, ";%s=%g", n, p.ms[i])
	}
	os.Setenv(phasesEnv, b.String())
}

// inheritedPhases continues the predecessor's steps, if it handed them on
// (its exec starts the next step), or starts anew at
// paused. It clears the variable either way.
func inheritedPhases(paused time.Time) *phases {
	p := newPhases(paused)
	v, ok := os.LookupEnv(phasesEnv)
	if !ok {
		return p
	}
	os.Unsetenv(phasesEnv)
	fields := strings.Split(v, ";")
	ns, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil {
		return p
	}
	for _, f := range fields[1:] {
		n, val, found := strings.Cut(f, "=")
		x, err := strconv.ParseFloat(val, 64)
		if !found || err != nil {
			return newPhases(paused)
		}
		p.names = append(p.names, n)
		p.ms = append(p.ms, x)
	}
	// The exec step runs from the exec to the end of package
	// initialisation; the start-up step from there to the adoption.
	p.names = append(p.names, "exec")
	p.ms = append(p.ms, ms(initDone.Sub(time.Unix(0, ns))))
	p.last = initDone
	return p
}

// logValue is the steps as a group: name → milliseconds.
func (p *phases) logValue() slog.Value {
	attrs := make([]slog.Attr, len(p.names))
	for i, n := range p.names {
		attrs[i] = slog.Float64(n, p.ms[i])
	}
	return slog.GroupValue(attrs...)
}
