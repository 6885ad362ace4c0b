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
	return Control{
		DataSize:        r.size,
		WriteIndex:      r.writeIndex.Load(),
		ReadIndex:       r.readIndex.Load(),
		InterruptMask:   r.interruptMask.Load(),
		PendingSendSize: r.pendingSend.Load(),
		FeatureBits:     r.featureBits.Load(),
	}, nil
}
