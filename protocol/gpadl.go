package protocol

import "fmt"

// The GPADL messages. A GPADL's range buffer (its GPA ranges back to back,
// as package gpa encodes them) travels as 64-bit words: as many as fit in
// the GpadlHeader, the rest in GpadlBody messages. gpadl_split.go cuts a
// range list into these messages; gpadl_reassemble.go puts it back together.

// Sizes and limits of the GPADL messages, header included.
const (
	// GpadlHeaderFixedSize is the GpadlHeader before its data words. The
	// words start at this offset, which is not 8-aligned.
	GpadlHeaderFixedSize = 20
	// GpadlHeaderMaxWords is how many range-buffer words fit in one
	// GpadlHeader: (240-20)/8 = 27, for 236 bytes in all.
	GpadlHeaderMaxWords = (MaxMessageSize - GpadlHeaderFixedSize) / 8
	// GpadlBodyFixedSize is the GpadlBody before its data words.
	GpadlBodyFixedSize = 16
	// GpadlBodyMaxWords is how many words fit in one GpadlBody: 28, for
	// exactly 240 bytes.
	GpadlBodyMaxWords = (MaxMessageSize - GpadlBodyFixedSize) / 8

	GpadlCreatedSize  = 20
	GpadlTeardownSize = 16
	GpadlTorndownSize = 12
)

// Message offsets of the GPADL fields.
const (
	gpadlHdrChannelID  = 8
	gpadlHdrGpadlID    = 12
	gpadlHdrRangeBufLn = 16 // u16
	gpadlHdrRangeCount = 18 // u16
	gpadlBodyMsgNumber = 8
	gpadlBodyGpadlID   = 12
)

// GpadlHeader (type 8, guest→host) starts a GPADL: the id the guest chose,
// the size of the whole range buffer and the number of ranges in it, and
// the first words of the buffer.
//
// Data holds the range buffer's first words (a range's {u32 byte count,
// u32 byte offset} header is one word, count in the low half). It need not
// end at a range boundary: the bodies continue where it stops.
type GpadlHeader struct {
	ChannelID      uint32   `json:"channel_id"`
	GpadlID        uint32   `json:"gpadl_id"`
	RangeBufferLen uint16   `json:"range_buffer_len"` // bytes in the whole range buffer, bodies included
	RangeCount     uint16   `json:"range_count"`
	Data           []uint64 `json:"data"` // at most GpadlHeaderMaxWords
}

// gpadlHeaderBox lets Decode allocate a GpadlHeader and its words at once.
type gpadlHeaderBox struct {
	m    GpadlHeader
	data [GpadlHeaderMaxWords]uint64
}

// Type is TypeGpadlHeader.
func (*GpadlHeader) Type() MessageType { return TypeGpadlHeader }

// Size is GpadlHeaderFixedSize plus 8 bytes per data word.
func (m *GpadlHeader) Size() int { return GpadlHeaderFixedSize + 8*len(m.Data) }

// Append appends the wire bytes. It panics if Data has more than
// GpadlHeaderMaxWords words.
func (m *GpadlHeader) Append(b []byte) []byte {
	if len(m.Data) > GpadlHeaderMaxWords {
		panic(fmt.Sprintf("protocol: GpadlHeader with %d data words, at most %d fit", len(m.Data), GpadlHeaderMaxWords))
	}
	b = appendHeader(b, TypeGpadlHeader, m.Size())
	b = le.AppendUint32(b, m.ChannelID)
	b = le.AppendUint32(b, m.GpadlID)
	b = le.AppendUint16(b, m.RangeBufferLen)
	b = le.AppendUint16(b, m.RangeCount)
	for _, w := range m.Data {
		b = le.AppendUint64(b, w)
	}
	return b
}

// unmarshal accepts 20 + 8n bytes for n up to 27. A header with no words
// decodes; the reassembler rejects it, since a range needs at least two.
// Decode's box gives Data room for 27 words; a GpadlHeader of the caller's
// gets a new slice.
func (m *GpadlHeader) unmarshal(b []byte) error {
	n := len(b) - GpadlHeaderFixedSize
	if n < 0 || n%8 != 0 {
		return lengthError(TypeGpadlHeader, len(b), GpadlHeaderFixedSize)
	}
	m.ChannelID = le.Uint32(b[gpadlHdrChannelID:])
	m.GpadlID = le.Uint32(b[gpadlHdrGpadlID:])
	m.RangeBufferLen = le.Uint16(b[gpadlHdrRangeBufLn:])
	m.RangeCount = le.Uint16(b[gpadlHdrRangeCount:])
	m.Data = appendWords(m.Data[:0], b[GpadlHeaderFixedSize:])
	return nil
}

// GpadlBody (type 9, guest→host) continues a GPADL's range buffer with up
// to 28 more words.
//
// MessageNumber is a u32 the receiver ignores: Linux sends 0, and so does
// NewGpadlMessages, so the bytes match Linux's. Bodies are ordered by
// arrival.
type GpadlBody struct {
	MessageNumber uint32   `json:"message_number"`
	GpadlID       uint32   `json:"gpadl_id"`
	Data          []uint64 `json:"data"` // 1 to GpadlBodyMaxWords words, in practice PFNs
}

// gpadlBodyBox lets Decode allocate a GpadlBody and its words at once.
type gpadlBodyBox struct {
	m    GpadlBody
	data [GpadlBodyMaxWords]uint64
}

// Type is TypeGpadlBody.
func (*GpadlBody) Type() MessageType { return TypeGpadlBody }

// Size is GpadlBodyFixedSize plus 8 bytes per data word.
func (m *GpadlBody) Size() int { return GpadlBodyFixedSize + 8*len(m.Data) }

// Append appends the wire bytes. It panics if Data has more than
// GpadlBodyMaxWords words.
func (m *GpadlBody) Append(b []byte) []byte {
	if len(m.Data) > GpadlBodyMaxWords {
		panic(fmt.Sprintf("protocol: GpadlBody with %d data words, at most %d fit", len(m.Data), GpadlBodyMaxWords))
	}
	b = appendHeader(b, TypeGpadlBody, m.Size())
	b = le.AppendUint32(b, m.MessageNumber)
	b = le.AppendUint32(b, m.GpadlID)
	for _, w := range m.Data {
		b = le.AppendUint64(b, w)
	}
	return b
}

// unmarshal accepts 16 + 8n bytes for n from 1 to 28: a body without data
// would only waste a message.
func (m *GpadlBody) unmarshal(b []byte) error {
	n := len(b) - GpadlBodyFixedSize
	if n < 8 || n%8 != 0 {
		return lengthError(TypeGpadlBody, len(b), GpadlBodyFixedSize+8)
	}
	m.MessageNumber = le.Uint32(b[gpadlBodyMsgNumber:])
	m.GpadlID = le.Uint32(b[gpadlBodyGpadlID:])
	m.Data = appendWords(m.Data[:0], b[GpadlBodyFixedSize:])
	return nil
}

// appendWords appends the little-endian u64s of b (a multiple of 8 bytes)
// to dst.
func appendWords(dst []uint64, b []byte) []uint64 {
	for ; len(b) >= 8; b = b[8:] {
		dst = append(dst, le.Uint64(b))
	}
	return dst
}

// GpadlCreated (type 10, host→guest) answers a complete GPADL.
type GpadlCreated struct {
	ChannelID uint32 `json:"channel_id"`
	GpadlID   uint32 `json:"gpadl_id"`
	Status    uint32 `json:"status"` // an NTSTATUS; 0 is success
}

// Type is TypeGpadlCreated.
func (*GpadlCreated) Type() MessageType { return TypeGpadlCreated }

// Size is GpadlCreatedSize.
func (*GpadlCreated) Size() int { return GpadlCreatedSize }

// Append appends the 20 wire bytes.
func (m *GpadlCreated) Append(b []byte) []byte {
	b = appendHeader(b, TypeGpadlCreated, GpadlCreatedSize)
	b = le.AppendUint32(b, m.ChannelID)
	b = le.AppendUint32(b, m.GpadlID)
	return le.AppendUint32(b, m.Status)
}

func (m *GpadlCreated) unmarshal(b []byte) error {
	if err := checkLen(TypeGpadlCreated, b, GpadlCreatedSize); err != nil {
		return err
	}
	m.ChannelID = le.Uint32(b[channelIDOffset:])
	m.GpadlID = le.Uint32(b[secondFieldOffset:])
	m.Status = le.Uint32(b[thirdFieldOffset:])
	return nil
}

// GpadlTeardown (type 11, guest→host) asks the host to drop a GPADL.
type GpadlTeardown struct {
	ChannelID uint32 `json:"channel_id"`
	GpadlID   uint32 `json:"gpadl_id"`
}

// Type is TypeGpadlTeardown.
func (*GpadlTeardown) Type() MessageType { return TypeGpadlTeardown }

// Size is GpadlTeardownSize.
func (*GpadlTeardown) Size() int { return GpadlTeardownSize }

// Append appends the 16 wire bytes.
func (m *GpadlTeardown) Append(b []byte) []byte {
	b = appendHeader(b, TypeGpadlTeardown, GpadlTeardownSize)
	b = le.AppendUint32(b, m.ChannelID)
	return le.AppendUint32(b, m.GpadlID)
}

func (m *GpadlTeardown) unmarshal(b []byte) error {
	if err := checkLen(TypeGpadlTeardown, b, GpadlTeardownSize); err != nil {
		return err
	}
	m.ChannelID = le.Uint32(b[channelIDOffset:])
	m.GpadlID = le.Uint32(b[secondFieldOffset:])
	return nil
}

// GpadlTorndown (type 12, host→guest) confirms GpadlTeardown; the guest
// may reuse the pages and the id afterwards.
type GpadlTorndown struct {
	GpadlID uint32 `json:"gpadl_id"`
}

// Type is TypeGpadlTorndown.
func (*GpadlTorndown) Type() MessageType { return TypeGpadlTorndown }

// Size is GpadlTorndownSize.
func (*GpadlTorndown) Size() int { return GpadlTorndownSize }

// Append appends the 12 wire bytes.
func (m *GpadlTorndown) Append(b []byte) []byte {
	return le.AppendUint32(appendHeader(b, TypeGpadlTorndown, GpadlTorndownSize), m.GpadlID)
}

func (m *GpadlTorndown) unmarshal(b []byte) error {
	if err := checkLen(TypeGpadlTorndown, b, GpadlTorndownSize); err != nil {
		return err
	}
	m.GpadlID = le.Uint32(b[8:])
	return nil
}
