package chaos

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Report is what a run tried and what the host did.
type Report struct {
	Seed    uint64  `json:"seed"`
	Seconds float64 `json:"seconds"`
	// Sessions is how many connections the run made (transport-only
	// sessions included); SessionsEndedByHost how many of them the host
	// ended before the guest dropped them.
	Sessions            int `json:"sessions"`
	SessionsEndedByHost int `json:"sessions_ended_by_host"`
	// ConnectFailures counts reconnects that failed (the first connect
	// failing ends the run with ErrConnect instead).
	ConnectFailures int `json:"connect_failures"`
	// Actions, by kind, sorted.
	Actions []ActionReport `json:"actions"`

	byKind map[string]map[string]int
}

// ActionReport is one kind of action: how often it was tried and what
// the host did, by outcome.
type ActionReport struct {
	Kind     string         `json:"kind"`
	Tried    int            `json:"tried"`
	Outcomes map[string]int `json:"outcomes"`
}

// Outcomes, as the report names them. Statuses are added as
// "status 0x…" to the names that carry one.
const (
	outIgnored      = "ignored"              // no answer, the connection stays
	outDisconnected = "disconnected by host" // the host ended the connection
	outAnswered     = "answered"             // the host answered as to a well-formed request
	outCreated      = "GPADL created"
	outGpadlFailed  = "GPADL refused"
	outOpened       = "opened"
	outOpenFailed   = "open refused"
	outNoAnswer     = "no answer in time" // awaited an answer that did not come; connection up
	outRescinded    = "channel rescinded"
	outNotSent      = "not sent: host not reading"
	outKept         = "connection kept"
	outTorndown     = "GPADL torn down"
)

func (r *Report) add(kind, outcome string) {
	if r.byKind == nil {
		r.byKind = make(map[string]map[string]int)
	}
	m := r.byKind[kind]
	if m == nil {
		m = make(map[string]int)
		r.byKind[kind] = m
	}
	m[outcome]++
}

// finish fills Actions from the counts.
func (r *Report) finish() {
	r.Actions = r.Actions[:0]
	for _, k := range slices.Sorted(maps.Keys(r.byKind)) {
		a := ActionReport{Kind: k, Outcomes: r.byKind[k]}
		for _, n := range a.Outcomes {
			a.Tried += n
		}
		r.Actions = append(r.Actions, a)
	}
}

// Tried is how many actions of kind the run tried.
func (r *Report) Tried(kind string) int {
	n := 0
	for _, o := range r.byKind[kind] {
		n += o
	}
	return n
}

// WriteText prints the report for people: one line per kind of action,
// its count and the host's reactions, most frequent first.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "chaos: seed %d, %.1f s, %d sessions (%d ended by the host, %d reconnects failed)\n",
		r.Seed, r.Seconds, r.Sessions, r.SessionsEndedByHost, r.ConnectFailures)
	width := len("action")
	for _, a := range r.Actions {
		width = max(width, len(a.Kind))
	}
	fmt.Fprintf(&b, "  %-*s  %6s  %s\n", width, "action", "tried", "what the host did")
	for _, a := range r.Actions {
		outs := slices.Collect(maps.Keys(a.Outcomes))
		slices.SortFunc(outs, func(x, y string) int {
			if c := a.Outcomes[y] - a.Outcomes[x]; c != 0 {
				return c
			}
			return strings.Compare(x, y)
		})
		parts := make([]string, len(outs))
		for i, o := range outs {
			parts[i] = fmt.Sprintf("%s %d", o, a.Outcomes[o])
		}
		fmt.Fprintf(&b, "  %-*s  %6d  %s\n", width, a.Kind, a.Tried, strings.Join(parts, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
