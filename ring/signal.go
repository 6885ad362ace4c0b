package ring

// The signalling predicates of WIRE.md §3, as pure functions so that the
// endpoints and their tests share one definition.

// WriterShouldSignal reports whether a writer that has just published a
// batch must signal the reader: the reader has not masked interrupts, and
// the ring was empty before the batch (the read index, loaded after the
// publish, still equals the write index the batch started from). A reader
// that had data left is still draining and will see the batch anyway.
func WriterShouldSignal(interruptMask, readIndex, oldWriteIndex uint32) bool {
	return interruptMask == 0 && readIndex == oldWriteIndex
}

// ReaderShouldSignal reports whether a reader that has just published a new
// read index must signal a writer blocked on a full ring. Only rings with
// the pending send size feature take part. The writer asked for
// pendingSend bytes (low 3 bits ignored); it is woken exactly when the free
// space crosses that mark with this commit: writable bytes (size - used)
// were at most pendingSend before and exceed it after. A writer whose
// request was already met before this commit was signalled then.
func ReaderShouldSignal(featurePendingSend bool, pendingSend, writableBefore, writableAfter uint32) bool {
	if !featurePendingSend {
		return false
	}
	pss := pendingSendBytes(pendingSend)
	if pss == 0 {
		return false
	}
	return writableBefore <= pss && pss < writableAfter
}

// pendingSendFor is the pending send size a writer asks for when it needs
// need bytes (packet and footer). The writer fits once writable bytes
// exceed need; asking for at least a quarter of the ring is the hysteresis
// that keeps a writer of small packets from waking for every few bytes the
// reader frees. The value is a multiple of 8 below the ring size, so the
// reader's predicate can always become true.
func pendingSendFor(need, size uint32) uint32 {
	pss := max(need, size/4)
	pss = (pss + 7) &^ 7
	return min(pss, size-8)
}

// pendingSendBytes is the request a pending send size field makes: its low
// 3 bits carry nothing.
func pendingSendBytes(field uint32) uint32 { return field &^ 7 }
