package ring

import (
	"sync/atomic"
	"unsafe"
)

// word returns the control page field at off as an atomic. The region's
// alignment was checked in newRing, and off is a multiple of 4.
func word(ctl []byte, off int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&ctl[off]))
}

func aligned8(b []byte) bool {
	return uintptr(unsafe.Pointer(unsafe.SliceData(b)))%8 == 0
}
