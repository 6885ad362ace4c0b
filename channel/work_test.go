package channel

import "testing"

// TestWorkQueue: items come out in order, a token waits whenever items
// went into an empty queue, and a queue kept busy (never empty) reuses its
// room instead of growing.
func TestWorkQueue(t *testing.T) {
	var q workQueue
	q.reset()
	if _, ok := q.pop(); ok {
		t.Fatal("pop of an empty queue")
	}
	pkts := make([]Packet, 8)
	next, want := 0, 0
	push := func() { q.push(workItem{p: &pkts[next%len(pkts)], batchEnd: next}); next++ }
	pop := func() {
		t.Helper()
		it, ok := q.pop()
		if !ok || it.batchEnd != want || it.p != &pkts[want%len(pkts)] {
			t.Fatalf("pop: %v %+v, want item %d", ok, it, want)
		}
		want++
	}
	push()
	select {
	case <-q.ready:
	default:
		t.Fatal("no token after a push into an empty queue")
	}
	push()
	select {
	case <-q.ready:
		t.Fatal("a token for a push into a queue with items")
	default:
	}
	pop()
	pop()
	// Steady state: never empty, at most 5 queued.
	for range 5 {
		push()
	}
	for range 10000 {
		push()
		pop()
	}
	if c := cap(q.items); c > 16 {
		t.Fatalf("queue of at most 6 items grew to %d", c)
	}
	for q.len() > 0 {
		pop()
	}
	q.reset()
	if _, ok := q.pop(); ok || q.len() != 0 {
		t.Fatal("reset left items")
	}
	select {
	case <-q.ready:
		t.Fatal("reset left a token")
	default:
	}
}
