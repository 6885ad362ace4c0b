package ring

// Control is a snapshot of a ring's control page, for tools that show a
// ring without taking part in it.
type Control struct {
	DataSize        uint32
	WriteIndex      uint32
	ReadIndex       uint32
	InterruptMask   uint32
	PendingSendSize uint32
	FeatureBits     uint32
}

// Inspect loads each control field of the ring in region once. It checks
// the region's shape but not the indices: a tool shows a corrupt ring as
// it is, and the Reader reports what is wrong with it.
func Inspect(region []byte) (Control, error) {
	r, err := newRing(region)
	if err != nil {
		return Control{}, err
	}
	return r.Control(), nil
}

// Control loads each control field of the ring once, for a monitor that
// judges the ring from beside it (the channel's stall check): the peer
// writes some of these fields, so they are a snapshot to validate, not
// state. Safe from any goroutine.
func (r *ring) Control() Control {
	return Control{
		DataSize:        r.size,
		WriteIndex:      r.writeIndex.Load(),
		ReadIndex:       r.readIndex.Load(),
		InterruptMask:   r.interruptMask.Load(),
		PendingSendSize: r.pendingSend.Load(),
		FeatureBits:     r.featureBits.Load(),
	}
}

// Unread is the number of bytes between the read and write indices of
// the snapshot; false for indices that are not valid (not below the data
// size, or not multiples of 8).
func (c Control) Unread() (n uint32, ok bool) {
	if c.WriteIndex >= c.DataSize || c.ReadIndex >= c.DataSize || (c.WriteIndex|c.ReadIndex)%8 != 0 {
		return 0, false
	}
	r := ring{size: c.DataSize}
	return r.used(c.WriteIndex, c.ReadIndex), true
}

// PendingSendMet reports whether the snapshot shows a writer asleep for
// space that is already free: the ring uses the pending send size, the
// writer asked for some, and more than that is writable now. Whoever
// reads this ring then owes the writer a signal; it is the state
// ReaderShouldSignal catches at the commit that frees the space, seen
// afterwards (for instance by a process that took over the reading end).
// Indices that are not valid give false.
func (c Control) PendingSendMet() bool {
	if c.FeatureBits&FeaturePendingSendSize == 0 || c.WriteIndex >= c.DataSize || c.ReadIndex >= c.DataSize {
		return false
	}
	pss := pendingSendBytes(c.PendingSendSize)
	if pss == 0 {
		return false
	}
	r := ring{size: c.DataSize}
	return c.DataSize-r.used(c.WriteIndex, c.ReadIndex) > pss
}
