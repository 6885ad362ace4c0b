package hostchaos

import (
	"sync/atomic"
	"unsafe"
)

// index is a ring control field, used atomically as both sides do.
// Precondition: off+4 <= len(region), off a multiple of 4.
func index(region []byte, off int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&region[off]))
}
