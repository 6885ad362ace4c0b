package channel

import "sync"

// workQueue is the worker goroutine's queue of work items: packets
// deferred to it (DeferToPassive), and in blocking mode every packet and
// the end of each batch. It never blocks its producers and grows as it is
// used: a channel that never defers (most non-blocking drivers) allocates
// nothing for it, where a Go channel with room for every packet of the
// pool cost every Enable 2×SetMaxPacketCount items up front, and a
// servicing successor enables every channel in its blackout.
//
// Items come out in the order they went in. ready holds a token whenever
// items went in while the queue was empty; only the worker takes tokens,
// and it empties the queue (drainWork) after each, so a queue with items
// has a token waiting unless the worker is at work on it (drainWork,
// doQueuedWork, which leaves a token for what it leaves queued).
type workQueue struct {
	mu    sync.Mutex
	items []workItem
	head  int           // items[head:] are queued
	ready chan struct{} // capacity 1
}

// reset empties the queue for a channel being enabled, before its worker
// starts.
func (q *workQueue) reset() {
	clear(q.items)
	q.items, q.head = q.items[:0], 0
	if q.ready == nil {
		q.ready = make(chan struct{}, 1)
	}
	select {
	case <-q.ready:
	default:
	}
}

// push queues it and wakes the worker if the queue was empty. Safe for
// concurrent use.
func (q *workQueue) push(it workItem) {
	q.mu.Lock()
	wake := q.head == len(q.items)
	if len(q.items) == cap(q.items) && q.head > 0 {
		// Reuse the room of the items taken already.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, it)
	q.mu.Unlock()
	if wake {
		q.wake()
	}
}

// wake leaves the worker a token, if none waits.
func (q *workQueue) wake() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// len is the number of items queued.
func (q *workQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}

// pop takes the oldest item, if any.
func (q *workQueue) pop() (workItem, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return workItem{}, false
	}
	it := q.items[q.head]
	q.items[q.head] = workItem{}
	if q.head++; q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return it, true
}
