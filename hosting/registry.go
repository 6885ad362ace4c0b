package hosting

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/govmbus/govmbus/host"
)

// Kind is one kind of device a daemon can serve, named on its command
// line as Name or Name=ARG (vmbus host --device echo, --device blk=FILE).
// Adding a device to a daemon is registering its Kind: neither the daemon
// nor the command line changes.
type Kind struct {
	// Name is the kind's name, before any "=".
	Name string
	// Arg is what follows "=" in the device's usage ("FILE"); empty for
	// a kind that takes no argument.
	Arg string
	// Group counts devices of several kinds against one Max (blk and
	// blk-ro: one disk); empty is Name.
	Group string
	// Max bounds how many devices of the group a daemon serves (each
	// costs every guest a channel); 0 is no bound.
	Max int
	// Open makes one device of this kind from its argument. n counts the
	// devices of the group so far, this one included (1 for the first):
	// a kind offered more than once gives each its own instance.
	Open func(arg string, n int, log *slog.Logger) (Spec, error)
	// Expand, instead of Open, makes the kind a shorthand for other
	// device values (ic: heartbeat, shutdown, timesync and kvp), each
	// opened as if given in its place. A shorthand takes no argument.
	Expand []string
}

// Spec is one configured device: the daemon offers it to every guest,
// one channel each.
type Spec interface {
	// Offer is what the device's channel is offered as.
	Offer() host.OfferSpec
	// New offers the device to guest g.
	New(g *host.Guest) (Device, error)
	// Restore continues the device of guest g that a predecessor saved
	// (Device.Save's chunks, in order), paused: the daemon starts it.
	Restore(g *host.Guest, chunks [][]byte) (Device, error)
	// Close releases what Open took (a disk's file) once no device
	// of the spec serves any more.
	Close() error
}

// Registry is a set of device kinds by name. It is safe for concurrent
// use.
type Registry struct {
	mu    sync.Mutex
	kinds []Kind
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

// Register adds k. A kind without a name, with neither or both of Open
// and Expand, or a name already
// registered, is the caller's mistake and panics, as a duplicate
// flag.Var does.
func (r *Registry) Register(k Kind) {
	if k.Name == "" || (k.Open == nil) == (len(k.Expand) == 0) || strings.Contains(k.Name, "=") || (k.Expand != nil && k.Arg != "") {
		panic(fmt.Sprintf("hosting: Register of an incomplete kind %q", k.Name))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.kinds {
		if o.Name == k.Name {
			panic(fmt.Sprintf("hosting: kind %q registered twice", k.Name))
		}
	}
	r.kinds = append(r.kinds, k)
}

// Usage lists the kinds as a device is written: "echo, blk=FILE or
// blk-ro=FILE".
func (r *Registry) Usage() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	u := make([]string, len(r.kinds))
	for i, k := range r.kinds {
		u[i] = k.Name
		if k.Arg != "" {
			u[i] += "=" + k.Arg
		}
	}
	if len(u) < 2 {
		return strings.Join(u, "")
	}
	return strings.Join(u[:len(u)-1], ", ") + " or " + u[len(u)-1]
}

func (r *Registry) lookup(name string) (Kind, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.kinds {
		if k.Name == name {
			return k, true
		}
	}
	return Kind{}, false
}

// ErrDevice marks a device value that is wrong: an unknown kind, too many
// of a kind, or an argument its kind cannot open. A command line reports
// it as bad usage.
var ErrDevice = errors.New("hosting: bad device")

// ErrConfig marks another Config value that is wrong: a poll budget out
// of range (New), a state file that cannot be written (Serve). A command
// line reports it as bad usage, as it does ErrDevice.
var ErrConfig = errors.New("hosting: bad configuration")

// deviceError is an ErrDevice with what was wrong.
type deviceError struct{ msg string }

func (e *deviceError) Error() string        { return e.msg }
func (e *deviceError) Is(target error) bool { return target == ErrDevice }

// expand replaces each shorthand among values by what it stands for,
// once: a shorthand of shorthands is not followed.
func (r *Registry) expand(values []string) []string {
	out := make([]string, 0, len(values))
	for _, v := range values {
		if k, ok := r.lookup(v); ok && len(k.Expand) > 0 {
			out = append(out, k.Expand...)
			continue
		}
		out = append(out, v)
	}
	return out
}

// open checks every device value and opens each; on error it closes what
// it opened.
func (r *Registry) open(values []string, log *slog.Logger) ([]Spec, []string, error) {
	var specs []Spec
	var names []string
	fail := func(format string, args ...any) ([]Spec, []string, error) {
		for _, s := range specs {
			s.Close() //nolint:errcheck // nothing served on it
		}
		return nil, nil, &deviceError{fmt.Sprintf(format, args...)}
	}
	counts := make(map[string]int)
	values = r.expand(values)
	for _, v := range values {
		name, arg, hasArg := strings.Cut(v, "=")
		k, ok := r.lookup(name)
		if !ok || k.Open == nil || hasArg != (k.Arg != "") || (hasArg && arg == "") {
			if u := r.Usage(); u != "" {
				return fail("unknown device %q (want %s)", v, u)
			}
			return fail("unknown device %q: no device kinds are registered (Config.Kinds)", v)
		}
		group := k.Group
		if group == "" {
			group = k.Name
		}
		counts[group]++
		if k.Max > 0 && counts[group] > k.Max {
			if k.Max == 1 {
				return fail("one %s device at most", group)
			}
			return fail("%d %s devices at most", k.Max, group)
		}
		s, err := k.Open(arg, counts[group], log)
		if err != nil {
			return fail("device %s: %v", v, err)
		}
		specs = append(specs, s)
		names = append(names, group)
		// A guest takes one channel per offer: a second device offered
		// as the same interface and instance would never be reached.
		o := s.Offer()
		for j, prev := range specs[:len(specs)-1] {
			if p := prev.Offer(); p.InterfaceType == o.InterfaceType && p.InterfaceInstance == o.InterfaceInstance && p.SubchannelIndex == o.SubchannelIndex {
				return fail("device %s is offered as device %s is (interface %v, instance %v): give each its own instance", v, values[j], o.InterfaceType, o.InterfaceInstance)
			}
		}
	}
	return specs, names, nil
}
