package ring

// Poll reports whether the writer has published bytes past what this
// Reader has read: one load of the write index, for a reader that spins
// on the ring (interrupts masked) instead of sleeping on a signal. It
// validates nothing and changes no state, so it costs a shared cache line
// and no more; a true answer is a hint for Next, which loads the index
// again and checks it. A hostile writer can make it true with nothing to
// read, so a poller must treat a Next that finds nothing as no work.
func (r *Reader) Poll() bool {
	return r.err == nil && r.writeIndex.Load() != r.out
}
