package hosting

import (
	"strings"
	"testing"

	"github.com/govmbus/govmbus/savedstate"
)

// TestHostStateGuestFlags round-trips the host-guest flags: a guest saved
// before its servers were built, or before its transport hello was read,
// must reach the successor as such; a guest without servers cannot carry
// channel states.
func TestHostStateGuestFlags(t *testing.T) {
	bus, err := savedstate.NewSaver(savedstate.ScopeBus, []byte("bus"), nil)
	if err != nil {
		t.Fatal(err)
	}
	st := &hostState{Count: 3, Devices: []string{"echo"}, Guests: []*guestState{
		{Index: 0, Memory: true, Bus: bus.Bytes(), Channels: [][][]byte{{[]byte("chan")}}},
		{Index: 1, NoServers: true, HelloPending: true, Bus: bus.Bytes(), Channels: make([][][]byte, 1)},
		{Index: 2, Memory: true, NoServers: true, Bus: bus.Bytes(), Channels: make([][][]byte, 1)},
	}}
	b, err := st.encode("sock")
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseHostState(b, "sock")
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range got.Guests {
		w := st.Guests[i]
		if g.Memory != w.Memory || g.NoServers != w.NoServers || g.HelloPending != w.HelloPending {
			t.Errorf("guest %d: memory %v no servers %v hello pending %v, want %v %v %v", i, g.Memory, g.NoServers, g.HelloPending, w.Memory, w.NoServers, w.HelloPending)
		}
	}
	st.Guests[0].NoServers = true
	if b, err = st.encode("sock"); err != nil {
		t.Fatal(err)
	}
	if _, err := parseHostState(b, "sock"); err == nil || !strings.Contains(err.Error(), "no servers") {
		t.Fatalf("a guest without servers but with a channel state: %v", err)
	}
	if _, err := decodeHostGuest([]byte{0, 0, 0, 0, 0x08, 0, 0, 0, 0}); err == nil {
		t.Fatal("an unknown host-guest flag was accepted")
	}
}
