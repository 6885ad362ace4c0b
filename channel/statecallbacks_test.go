package channel

import "testing"

// StateCallbacks gives back what SetStateCallbacks set, so a layer can
// wrap another's callbacks and call them.
func TestStateCallbacksGetter(t *testing.T) {
	c := NewServer()
	defer c.Cleanup() //nolint:errcheck // never enabled
	var calls []string
	if err := c.SetStateCallbacks(StateCallbacks{Closed: func(*Channel) { calls = append(calls, "inner") }}); err != nil {
		t.Fatal(err)
	}
	cb := c.StateCallbacks()
	inner := cb.Closed
	if inner == nil || cb.Opened != nil {
		t.Fatalf("got %+v", cb)
	}
	cb.Closed = func(ch *Channel) { inner(ch); calls = append(calls, "outer") }
	if err := c.SetStateCallbacks(cb); err != nil {
		t.Fatal(err)
	}
	c.StateCallbacks().Closed(c)
	if len(calls) != 2 || calls[0] != "inner" || calls[1] != "outer" {
		t.Fatalf("calls %v", calls)
	}
}
