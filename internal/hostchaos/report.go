package hostchaos

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
)

// Report is what a run tried and what the guests did.
type Report struct {
	Seed    uint64  `json:"seed"`
	Seconds float64 `json:"seconds"`
	// Sessions is how many guest connections the run served;
	// UpstreamFailures how many of them it could not pass to the real
	// host (they were dropped at once).
	Sessions         int `json:"sessions"`
	UpstreamFailures int `json:"upstream_failures"`
	// Ends counts how the sessions ended: "guest hung up", "host hung
	// up", "dropped by chaos", "run ended".
	Ends map[string]int `json:"ends"`
	// Actions, by kind, sorted.
	Actions []ActionReport `json:"actions"`
	// Log is every session, in the order they ended: what it armed,
	// how many misbehaviours it tried, how it ended.
	Log []SessionReport `json:"sessions_log"`

	mu     sync.Mutex
	byKind map[string]map[string]int
}

// ActionReport is one kind of misbehaviour: how often it was tried and
// what the guest did next, by outcome.
type ActionReport struct {
	Kind     string         `json:"kind"`
	Tried    int            `json:"tried"`
	Outcomes map[string]int `json:"outcomes"`
}

// SessionReport is one session of the run.
type SessionReport struct {
	Number uint64   `json:"number"` // in the order guests connected; with the seed, it seeds the session
	Armed  []string `json:"armed"`
	Tried  int      `json:"tried"`
	End    string   `json:"end"`
}

// merge adds a finished session's counts.
func (r *Report) merge(s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byKind == nil {
		r.byKind = make(map[string]map[string]int)
		r.Ends = make(map[string]int)
	}
	r.Sessions++
	if s.upstreamFailed {
		r.UpstreamFailures++
	}
	r.Ends[s.end]++
	r.Log = append(r.Log, SessionReport{Number: s.number, Armed: slices.Sorted(maps.Keys(s.armed)), Tried: len(s.acts), End: s.end})
	for _, a := range s.outcomes() {
		m := r.byKind[a.kind]
		if m == nil {
			m = make(map[string]int)
			r.byKind[a.kind] = m
		}
		m[a.outcome]++
	}
}

// finish fills Actions from the counts.
func (r *Report) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Ends == nil {
		r.Ends = make(map[string]int)
	}
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
	for _, a := range r.Actions {
		if a.Kind == kind {
			return a.Tried
		}
	}
	return 0
}

// WriteText prints the report for people: one line per kind of
// misbehaviour, its count and the guests' reactions, most frequent first.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "hostile host: seed %d, %.1f s, %d sessions (%d not passed upstream); ended: %s\n",
		r.Seed, r.Seconds, r.Sessions, r.UpstreamFailures, countsText(r.Ends))
	width := len("misbehaviour")
	for _, a := range r.Actions {
		width = max(width, len(a.Kind))
	}
	fmt.Fprintf(&b, "  %-*s  %6s  %s\n", width, "misbehaviour", "tried", "what the guest did next")
	for _, a := range r.Actions {
		fmt.Fprintf(&b, "  %-*s  %6d  %s\n", width, a.Kind, a.Tried, countsText(a.Outcomes))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// countsText is "name n, name n", the most frequent first.
func countsText(m map[string]int) string {
	names := slices.Collect(maps.Keys(m))
	slices.SortFunc(names, func(x, y string) int {
		if c := m[y] - m[x]; c != 0 {
			return c
		}
		return strings.Compare(x, y)
	})
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %d", n, m[n])
	}
	return strings.Join(parts, ", ")
}
