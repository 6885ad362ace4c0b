package ring

import (
	"encoding/binary"
	"testing"
)

// FuzzControl: whatever a peer leaves in a control page, the judgments a
// monitor makes of a snapshot (Unread, PendingSendMet) and of a writer's
// progress (Told) never panic, never count more unread bytes than the
// ring holds, and refuse indices that are not valid.
func FuzzControl(f *testing.F) {
	seed := func(size, w, r, mask, pss, feat uint32, pub, at uint64) []byte {
		b := make([]byte, 40)
		for i, v := range []uint32{size, w, r, mask, pss, feat} {
			binary.LittleEndian.PutUint32(b[4*i:], v)
		}
		binary.LittleEndian.PutUint64(b[24:], pub)
		binary.LittleEndian.PutUint64(b[32:], at)
		return b
	}
	f.Add(seed(4096, 88, 0, 0, 0, 1, 88, 88))
	f.Add(seed(4096, 0, 4048, 0, 1024, 1, 4096, 0))
	f.Add(seed(4096, 4100, 3, 1, 0xffffffff, 0xffffffff, 1, 2))
	f.Add(seed(0, 0, 0, 0, 0, 0, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 40 {
			return
		}
		u := func(i int) uint32 { return binary.LittleEndian.Uint32(b[4*i:]) }
		c := Control{DataSize: u(0) &^ 7, WriteIndex: u(1), ReadIndex: u(2), InterruptMask: u(3), PendingSendSize: u(4), FeatureBits: u(5)}
		n, ok := c.Unread()
		valid := c.WriteIndex < c.DataSize && c.ReadIndex < c.DataSize && (c.WriteIndex|c.ReadIndex)%8 == 0
		if ok != valid {
			t.Fatalf("Unread of %+v: ok %v, indices valid %v", c, ok, valid)
		}
		if ok && n >= c.DataSize {
			t.Fatalf("Unread of %+v: %d bytes, ring of %d", c, n, c.DataSize)
		}
		c.PendingSendMet()
		p := Progress{WriteIndex: c.WriteIndex, Published: binary.LittleEndian.Uint64(b[24:]), SignalledAt: binary.LittleEndian.Uint64(b[32:]), Signalled: u(3)&1 == 1}
		if p.Told(n) && (!p.Signalled || uint64(n) > p.Published) {
			t.Fatalf("Told(%d) of %+v: true without a signal covering the bytes", n, p)
		}
	})
}
