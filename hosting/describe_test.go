package hosting

import (
	"encoding/binary"
	"testing"

	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/savedstate"
)

// TestDescribeChunkRefusesBadNested: a bus state inside a host-bus-chunk
// whose record of a known kind does not decode makes the chunk's
// description fail, so that `vmbus state inspect` exits 2 on it, as it
// does on such a record outside; before, the record was shown as hex and
// inspect exited 0 on a state no restore takes.
func TestDescribeChunkRefusesBadNested(t *testing.T) {
	sv, err := savedstate.NewSaver(savedstate.ScopeBus, []byte("bus.sock"), []savedstate.Record{{Kind: host.KindBusChannel, Flags: savedstate.FlagCritical}})
	if err != nil {
		t.Fatal(err)
	}
	chunk := append(binary.LittleEndian.AppendUint32(nil, 0), sv.Bytes()...) // guest 0
	if v, err := describeChunkOf(kindHostBusChunk, chunk); err == nil {
		t.Fatalf("a bus-channel record without a body described as %+v", v)
	}
}
