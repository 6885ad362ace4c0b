package pipe

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The pipe header (DEVICES.md §1.2): every in-band packet of a pipe
// channel starts with {u32 type, u32 data size}, the data follows,
// unpadded in the size (the ring pads the packet to 8 bytes).
const (
	// HeaderSize is the pipe header's length.
	HeaderSize = 8
	// MaxData is the largest data size of one packet, the limit of
	// Linux (MAX_PIPE_DATA_PAYLOAD) and OpenVMM; a reader refuses more.
	MaxData = 16384
	// LinuxMaxData is what Linux's hv_sock puts in one packet: a
	// configured Config.MaxData of this size writes as Linux does.
	LinuxMaxData = 4088

	headerData = 1 // type: data; with size 0, the end of stream
	// 2 (partial) exists only inside OpenVMM's own ring, 3 and 4 (GPA
	// direct set-up and tear-down) have no open layout: all three are
	// refused as malformed.
)

// ErrMalformed is the sentinel of every pipe packet that breaks the
// framing; the concrete error says how. A Conn that receives one fails
// with it: its Read returns it after the data received before.
var ErrMalformed = errors.New("pipe: malformed packet")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// ParseHeader checks the pipe header at the start of a packet's payload
// and returns the data it announces: a slice of payload of the size the
// header gives (empty for the end of stream), the padding after it left
// out. The payload is read once, by value: the header's fields are
// decoded into locals before anything is decided. It fails (ErrMalformed)
// for a payload shorter than the header, a type other than data, a size
// past MaxData or past the payload.
func ParseHeader(payload []byte) (data []byte, err error) {
	if len(payload) < HeaderSize {
		return nil, malformed("payload of %d bytes, shorter than the %d-byte pipe header", len(payload), HeaderSize)
	}
	typ := binary.LittleEndian.Uint32(payload[0:4])
	n := binary.LittleEndian.Uint32(payload[4:8])
	if typ != headerData {
		return nil, malformed("pipe header type %d, want %d (data)", typ, headerData)
	}
	if n > MaxData {
		return nil, malformed("pipe data size %d passes the maximum %d", n, MaxData)
	}
	if uint64(n) > uint64(len(payload)-HeaderSize) {
		return nil, malformed("pipe data size %d passes the %d bytes after the header", n, len(payload)-HeaderSize)
	}
	return payload[HeaderSize : HeaderSize+int(n)], nil
}

// PutHeader writes a data header announcing n bytes (0: the end of
// stream) into b, which must hold HeaderSize bytes.
func PutHeader(b []byte, n int) {
	binary.LittleEndian.PutUint32(b[0:4], headerData)
	binary.LittleEndian.PutUint32(b[4:8], uint32(n))
}
