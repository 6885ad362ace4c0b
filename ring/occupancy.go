package ring

// Occupancy is the number of bytes between the read and write indices as
// the control page holds them now (written by one end, not yet consumed
// by the other), and the data size. It loads each shared index once and
// may be called from any goroutine: it is a monitoring snapshot, not an
// input to the ring's own decisions. Indices that are not valid (a peer
// that corrupted the control page) give 0 used bytes.
func (r *ring) Occupancy() (used, size int) {
	in, out := r.writeIndex.Load(), r.readIndex.Load()
	if in >= r.size || out >= r.size {
		return 0, int(r.size)
	}
	return int(r.used(in, out)), int(r.size)
}
