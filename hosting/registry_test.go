package hosting

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/protocol"
)

// nopSpec is a spec that is never offered: the registry's tests only
// open and close it. Its offer's instance is inst.
type nopSpec struct {
	closed *int
	inst   byte
}

func (s nopSpec) Offer() host.OfferSpec {
	return host.OfferSpec{InterfaceInstance: protocol.GUID{15: s.inst}}
}
func (nopSpec) New(*host.Guest) (Device, error)               { return nil, errors.New("no") }
func (nopSpec) Restore(*host.Guest, [][]byte) (Device, error) { return nil, errors.New("no") }
func (s nopSpec) Close() error                                { *s.closed++; return nil }

// TestRegistryOpen: device values are checked against the kinds (name,
// argument, bound per group) with the messages vmbus host prints, and a
// failure closes what was opened before it.
func TestRegistryOpen(t *testing.T) {
	closed := 0
	var ns []int
	r := NewRegistry()
	open := func(arg string, n int, _ *slog.Logger) (Spec, error) {
		if arg == "bad" {
			return nil, errors.New("cannot open bad")
		}
		ns = append(ns, n)
		return nopSpec{&closed, byte(len(ns))}, nil
	}
	r.Register(Kind{Name: "echo", Max: 2, Open: open})
	r.Register(Kind{Name: "same", Max: 2, Open: func(string, int, *slog.Logger) (Spec, error) { return nopSpec{&closed, 0}, nil }})
	r.Register(Kind{Name: "blk", Arg: "FILE", Group: "blk", Max: 1, Open: open})
	r.Register(Kind{Name: "blk-ro", Arg: "FILE", Group: "blk", Max: 1, Open: open})
	if u := r.Usage(); u != "echo, same, blk=FILE or blk-ro=FILE" {
		t.Errorf("usage %q", u)
	}
	specs, names, err := r.open([]string{"echo", "blk-ro=x", "echo"}, nil)
	if err != nil || len(specs) != 3 || strings.Join(names, ",") != "echo,blk,echo" || len(ns) != 3 || ns[2] != 2 {
		t.Fatalf("%v %v %v (n %v)", specs, names, err, ns)
	}
	for _, c := range []struct {
		values []string
		msg    string
		closed int
	}{
		{[]string{"echo", "echo", "echo"}, "2 echo devices at most", 2},
		{[]string{"blk=a", "blk-ro=b"}, "one blk device at most", 1},
		{[]string{"echo", "disk"}, `unknown device "disk" (want echo, same, blk=FILE or blk-ro=FILE)`, 1},
		{[]string{"same", "echo", "same"}, "device same is offered as device same is", 3},
		{[]string{"echo=1"}, `unknown device "echo=1"`, 0},
		{[]string{"blk="}, `unknown device "blk="`, 0},
		{[]string{"blk"}, `unknown device "blk"`, 0},
		{[]string{"echo", "blk=bad"}, "device blk=bad: cannot open bad", 1},
	} {
		closed = 0
		_, _, err := r.open(c.values, nil)
		if !errors.Is(err, ErrDevice) || !strings.HasPrefix(err.Error(), c.msg) || closed != c.closed {
			t.Errorf("%q: %v (closed %d, want %d)", c.values, err, closed, c.closed)
		}
	}
}

// TestRegistryEmpty: with no kinds registered (Config.Kinds left nil)
// every device is unknown, and the message says why.
func TestRegistryEmpty(t *testing.T) {
	if _, _, err := NewRegistry().open([]string{"echo"}, nil); !errors.Is(err, ErrDevice) || !strings.Contains(err.Error(), "no device kinds are registered") {
		t.Fatalf("%v", err)
	}
}

// TestRegistryRegisterMisuse: an incomplete or duplicate kind is the
// caller's mistake and panics.
func TestRegistryRegisterMisuse(t *testing.T) {
	open := func(string, int, *slog.Logger) (Spec, error) { return nil, nil }
	for _, k := range []Kind{{Name: "", Open: open}, {Name: "x"}, {Name: "a=b", Open: open}, {Name: "dup", Open: open}} {
		r := NewRegistry()
		r.Register(Kind{Name: "dup", Open: open})
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", k.Name)
				}
			}()
			r.Register(k)
		}()
	}
}

// TestRegistryExpand: a shorthand opens the kinds it stands for, in
// order, each counted against its own bound; it takes no argument.
func TestRegistryExpand(t *testing.T) {
	closed := 0
	r := NewRegistry()
	n := byte(0)
	open := func(string, int, *slog.Logger) (Spec, error) { n++; return nopSpec{&closed, n}, nil }
	r.Register(Kind{Name: "a", Max: 1, Open: open})
	r.Register(Kind{Name: "b", Max: 1, Open: open})
	r.Register(Kind{Name: "ab", Expand: []string{"a", "b"}})
	if got := r.expand([]string{"ab", "c"}); strings.Join(got, ",") != "a,b,c" {
		t.Errorf("expand: %q", got)
	}
	specs, names, err := r.open([]string{"ab"}, nil)
	if err != nil || len(specs) != 2 || strings.Join(names, ",") != "a,b" {
		t.Fatalf("ab: %v %v %v", specs, names, err)
	}
	if _, _, err := r.open([]string{"ab", "a"}, nil); err == nil || err.Error() != "one a device at most" {
		t.Errorf("ab and a: %v", err)
	}
	if _, _, err := r.open([]string{"ab=x"}, nil); !errors.Is(err, ErrDevice) {
		t.Errorf("ab=x: %v", err)
	}
}
