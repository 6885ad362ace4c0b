package ring

import "sync/atomic"

// publish stores v into a control field that the peer reads, as the
// first half of a handshake whose second half loads a field the peer
// writes: a writer publishes its index and then loads the interrupt mask
// and read index; a reader clears the mask (or publishes its index) and
// then loads the write index (and pending send size); a writer asks for
// a pending send size and then loads the read index. Each side must see
// the other's store or have its own seen, or a signal is lost and both
// sleep. That needs the store ordered before the load, which a
// read-modify-write gives on every build. A plain atomic Store does not
// always: under the race detector, a Store to memory outside the Go heap
// (a mapped ring) is a plain move with no barrier, and the load after it
// can pass it.
func publish(field *atomic.Uint32, v uint32) { field.Swap(v) }
