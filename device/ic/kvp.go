package ic

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

// KVP operations (DEVICES.md §3.8).
const (
	KVPGet       uint8 = 0
	KVPSet       uint8 = 1
	KVPDelete    uint8 = 2
	KVPEnumerate uint8 = 3
	KVPGetIPInfo uint8 = 4
	KVPSetIPInfo uint8 = 5
)

// KVP pools.
const (
	PoolExternal     uint8 = 0
	PoolGuest        uint8 = 1
	PoolAuto         uint8 = 2
	PoolAutoExternal uint8 = 3
	PoolAutoInternal uint8 = 4
	// Pools is the number of pools.
	Pools = 5
)

// PoolName names a pool.
func PoolName(p uint8) string {
	switch p {
	case PoolExternal:
		return "external"
	case PoolGuest:
		return "guest"
	case PoolAuto:
		return "auto"
	case PoolAutoExternal:
		return "auto-external"
	case PoolAutoInternal:
		return "auto-internal"
	}
	return fmt.Sprintf("pool-%d", p)
}

// ParsePool is PoolName's inverse, also taking the number.
func ParsePool(s string) (uint8, bool) {
	for p := range uint8(Pools) {
		if s == PoolName(p) {
			return p, true
		}
	}
	n, err := strconv.ParseUint(s, 10, 8)
	return uint8(n), err == nil && n < Pools
}

// KVP value types.
const (
	TypeString uint32 = 1
	TypeU32    uint32 = 4
	TypeU64    uint32 = 8  // Linux REG_U64
	TypeQWord  uint32 = 11 // Windows REG_QWORD, OpenVMM's 64-bit type
)

// KVP sizes: the key and value fields, UTF-16LE with the terminator.
const (
	MaxKeySize   = 512
	MaxValueSize = 2048
	// KVPSize is the message size the host sends for get, set, delete
	// and enumerate alike (OpenVMM's).
	KVPSize = 2580
)

// Operation-specific offsets and the body each needs.
const (
	kvpGetEnd    = 2576
	kvpEnumEnd   = 2580
	kvpDeleteEnd = 520
)

// OpName names a KVP operation.
func OpName(op uint8) string {
	switch op {
	case KVPGet:
		return "get"
	case KVPSet:
		return "set"
	case KVPDelete:
		return "delete"
	case KVPEnumerate:
		return "enumerate"
	case KVPGetIPInfo:
		return "get-ip-info"
	case KVPSetIPInfo:
		return "set-ip-info"
	}
	return fmt.Sprintf("op-%d", op)
}

// KVP is a KVP body of the four key-value operations. Numbers (value
// types 4, 8, 11) are held as decimal strings in Value.
type KVP struct {
	Op        uint8
	Pool      uint8
	Index     uint32 // enumerate
	ValueType uint32
	Key       string
	Value     string
}

// fields returns the offsets of an operation's fields: value type, key
// size, value size, key and value; -1 where it has none.
func kvpFields(op uint8) (typ, ksize, vsize, key, val, end int, ok bool) {
	switch op {
	case KVPGet, KVPSet:
		return 4, 8, 12, 16, 528, kvpGetEnd, true
	case KVPEnumerate:
		return 8, 12, 16, 20, 532, kvpEnumEnd, true
	case KVPDelete:
		return -1, 4, -1, 8, -1, kvpDeleteEnd, true
	}
	return 0, 0, 0, 0, 0, 0, false
}

// Marshal returns the body, KVPSize bytes. It fails for an operation it
// does not write, a pool out of range, a key or value past its field, or
// a number that does not parse.
func (k *KVP) Marshal() ([]byte, error) {
	typ, ksize, vsize, key, val, _, ok := kvpFields(k.Op)
	if !ok {
		return nil, fmt.Errorf("ic: KVP operation %s is not implemented", OpName(k.Op))
	}
	if k.Pool >= Pools {
		return nil, fmt.Errorf("ic: KVP pool %d", k.Pool)
	}
	b := make([]byte, KVPSize)
	b[0], b[1] = k.Op, k.Pool
	if k.Op == KVPEnumerate {
		binary.LittleEndian.PutUint32(b[4:], k.Index)
	}
	if k.Key != "" {
		n, ok := encodeUTF16(b[key:key+MaxKeySize], k.Key)
		if !ok {
			return nil, fmt.Errorf("ic: KVP key of %d UTF-16 bytes, at most %d with its terminator (and no NUL)", utf16Len(k.Key), MaxKeySize)
		}
		binary.LittleEndian.PutUint32(b[ksize:], n)
	}
	if typ >= 0 {
		binary.LittleEndian.PutUint32(b[typ:], k.ValueType)
	}
	if vsize >= 0 && (k.Value != "" || k.ValueType != TypeString && k.ValueType != 0) {
		n, err := putValue(b[val:val+MaxValueSize], k.ValueType, k.Value)
		if err != nil {
			return nil, err
		}
		binary.LittleEndian.PutUint32(b[vsize:], n)
	}
	return b, nil
}

func putValue(field []byte, typ uint32, v string) (uint32, error) {
	switch typ {
	case TypeU32:
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("ic: KVP u32 value %q", v)
		}
		binary.LittleEndian.PutUint32(field, uint32(n))
		return 4, nil
	case TypeU64, TypeQWord:
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("ic: KVP u64 value %q", v)
		}
		binary.LittleEndian.PutUint64(field, n)
		return 8, nil
	}
	n, ok := encodeUTF16(field, v)
	if !ok {
		return 0, fmt.Errorf("ic: KVP value of %d UTF-16 bytes, at most %d with its terminator (and no NUL)", utf16Len(v), MaxValueSize)
	}
	return n, nil
}

// UnmarshalKVP reads a KVP body. A request's strings must be
// NUL-terminated within their sizes; a reply's (reply true) may end at
// their size without one, as Linux writes them. Sizes past their field,
// odd string sizes, numbers of the wrong size, unknown operations and
// pools, and bodies shorter than the operation's layout are malformed.
func UnmarshalKVP(b []byte, reply bool) (*KVP, error) {
	if len(b) < 4 {
		return nil, malformed("KVP body of %d bytes", len(b))
	}
	k := &KVP{Op: b[0], Pool: b[1]}
	typ, ksize, vsize, key, val, end, ok := kvpFields(k.Op)
	if !ok {
		return nil, malformed("KVP operation %s is not implemented", OpName(k.Op))
	}
	if k.Pool >= Pools {
		return nil, malformed("KVP pool %d", k.Pool)
	}
	if len(b) < end {
		return nil, malformed("KVP %s body of %d bytes, want %d", OpName(k.Op), len(b), end)
	}
	dec := decodeUTF16
	if reply {
		dec = decodeUTF16Loose
	}
	if k.Op == KVPEnumerate {
		k.Index = binary.LittleEndian.Uint32(b[4:])
	}
	var err error
	if k.Key, err = dec(b[key:key+MaxKeySize], binary.LittleEndian.Uint32(b[ksize:]), "KVP key"); err != nil {
		return nil, err
	}
	if typ < 0 {
		return k, nil
	}
	k.ValueType = binary.LittleEndian.Uint32(b[typ:])
	n := binary.LittleEndian.Uint32(b[vsize:])
	field := b[val : val+MaxValueSize]
	switch k.ValueType {
	case TypeU32:
		if n != 4 {
			return nil, malformed("KVP u32 value of %d bytes", n)
		}
		k.Value = strconv.FormatUint(uint64(binary.LittleEndian.Uint32(field)), 10)
	case TypeU64, TypeQWord:
		if n != 8 {
			return nil, malformed("KVP u64 value of %d bytes", n)
		}
		k.Value = strconv.FormatUint(binary.LittleEndian.Uint64(field), 10)
	default:
		k.Value, err = dec(field, n, "KVP value")
	}
	return k, err
}

// KVPReply edits a KVP request payload (with its pipe header) into the
// guest's answer with status and, for get and enumerate, the key, value
// and value type written (type 1, strings without their terminator, as
// Linux writes them). The request must have parsed as req.
func KVPReply(payload []byte, req *KVP, status uint32, key, value string) []byte {
	b := Reply(payload)
	SetStatus(b, status)
	if status != StatusOK || (req.Op != KVPGet && req.Op != KVPEnumerate) {
		return b
	}
	typ, ksize, vsize, koff, voff, _, _ := kvpFields(req.Op)
	body := b[offBody:]
	binary.LittleEndian.PutUint32(body[typ:], TypeString)
	if req.Op == KVPEnumerate {
		binary.LittleEndian.PutUint32(body[ksize:], putUnterminated(body[koff:koff+MaxKeySize], key))
	}
	binary.LittleEndian.PutUint32(body[vsize:], putUnterminated(body[voff:voff+MaxValueSize], value))
	return b
}

// putUnterminated clears field and writes s into it, returning its size
// without the terminator; a string that does not fit is written empty.
func putUnterminated(field []byte, s string) uint32 {
	clear(field)
	n, ok := encodeUTF16(field, s)
	if !ok {
		clear(field)
		return 0
	}
	return n - 2
}
