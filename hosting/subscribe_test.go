package hosting

import (
	"path/filepath"
	"slices"
	"testing"
)

// TestSubscribe: subscribers see every event after Config.Events, in the
// order they subscribed, until they cancel.
func TestSubscribe(t *testing.T) {
	var seen []string
	d, err := New(Config{Socket: filepath.Join(t.TempDir(), "bus.sock"), Events: func(e Event) { seen = append(seen, "cfg "+e.Msg()) }})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	first := d.Subscribe(func(e Event) { seen = append(seen, "first "+e.Msg()) })
	d.Subscribe(func(e Event) { seen = append(seen, "second "+e.Msg()) })
	d.emit(&ServicingStarted{Servicing: 1, Mode: "exec"})
	first()
	first() // twice is once
	d.emit(&ServicingFailed{Stage: "spawn"})
	want := []string{"cfg servicing started", "first servicing started", "second servicing started", "cfg servicing failed", "second servicing failed"}
	if !slices.Equal(seen, want) {
		t.Fatalf("events seen %q, want %q", seen, want)
	}
}
