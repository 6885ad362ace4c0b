package channel

import (
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzTransferRanges feeds the client's check of a transfer-page packet's
// set id and ranges: {u16 set id, u32 buffer size, then {u32 count, u32
// offset} per range}. It must never panic, must accept exactly what a
// plain reading of the rules accepts (the known set, 1 to 4 ranges, each
// non-empty and inside the buffer in 64-bit arithmetic, 1 MiB in all, no
// two overlapping), and must leave an accepted packet's ranges copied
// unchanged.
func FuzzTransferRanges(f *testing.F) {
	seed := func(set uint16, size uint32, rs ...uint32) []byte {
		b := binary.LittleEndian.AppendUint16(nil, set)
		b = binary.LittleEndian.AppendUint32(b, size)
		for _, v := range rs {
			b = binary.LittleEndian.AppendUint32(b, v)
		}
		return b
	}
	f.Add(seed(testSetID, 8192, 100, 0))
	f.Add(seed(testSetID, 8192, 100, 200, 100, 0, 50, 150))
	f.Add(seed(testSetID, 8192, 100, 0, 100, 99))
	f.Add(seed(testSetID, 8192, 0x20, 0xFFFFFFF0))
	f.Add(seed(testSetID+1, 8192, 100, 0))
	f.Add(seed(testSetID, 0, 1, 0))
	const maxRanges, maxBytes = 4, 1 << 20
	var dst, scratch []TransferRange
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 6 {
			return
		}
		id := binary.LittleEndian.Uint16(b)
		size := uint64(binary.LittleEndian.Uint32(b[2:]))
		var ranges []TransferRange
		for rest := b[6:]; len(rest) >= 8 && len(ranges) < 64; rest = rest[8:] {
			ranges = append(ranges, TransferRange{Count: binary.LittleEndian.Uint32(rest), Offset: binary.LittleEndian.Uint32(rest[4:])})
		}
		sets := map[uint16]*TransferPageSet{testSetID: {id: testSetID, size: size}}
		s, err := checkTransfer(sets, id, ranges, maxRanges, maxBytes, &dst, &scratch)
		want := id == testSetID && len(ranges) >= 1 && len(ranges) <= maxRanges
		var total uint64
		for i, r := range ranges {
			end := uint64(r.Offset) + uint64(r.Count)
			want = want && r.Count > 0 && end <= size
			total += uint64(r.Count)
			for _, q := range ranges[:i] {
				if uint64(q.Offset) < end && uint64(r.Offset) < uint64(q.Offset)+uint64(q.Count) {
					want = false
				}
			}
		}
		want = want && total <= maxBytes
		if (err == nil) != want {
			t.Fatalf("set %#x size %d ranges %v: err %v, want accepted %v", id, size, ranges, err, want)
		}
		if err != nil {
			if !errors.Is(err, ErrTransferPages) {
				t.Fatalf("error %v does not match ErrTransferPages", err)
			}
			return
		}
		if s == nil || s.id != id || len(dst) != len(ranges) {
			t.Fatalf("accepted with set %v, %d ranges copied", s, len(dst))
		}
		for i := range ranges {
			if dst[i] != ranges[i] {
				t.Fatalf("range %d copied as %v, was %v", i, dst[i], ranges[i])
			}
		}
	})
}
