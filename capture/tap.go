package capture

import "sync/atomic"

// Tap is where a running capture is attached: the hooks on the hot
// paths load it, lock-free, and record only when it holds a Writer. The
// zero Tap holds none. It is safe for concurrent use.
type Tap struct{ w atomic.Pointer[Writer] }

// Load is the attached Writer, or nil.
func (t *Tap) Load() *Writer {
	if t == nil {
		return nil
	}
	return t.w.Load()
}

// Swap attaches w (nil detaches) and returns the Writer it replaces.
func (t *Tap) Swap(w *Writer) *Writer { return t.w.Swap(w) }
