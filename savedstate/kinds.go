package savedstate

import (
	"fmt"
	"sync"
)

// KindInfo lets tools show records of a kind: its name and a function that
// decodes a body into something printable (a struct that marshals to JSON).
type KindInfo struct {
	Name     string
	Describe func(body []byte) (any, error)
}

var (
	kindsMu sync.RWMutex
	kinds   = map[Kind]KindInfo{}
)

// RegisterKind records how to show a kind. The layers that save state
// register their kinds at init; registering a kind twice panics, since two
// layers would then disagree on what its bytes mean.
func RegisterKind(k Kind, info KindInfo) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if _, dup := kinds[k]; dup || k >= KindBegin {
		panic(fmt.Sprintf("savedstate: kind %#x registered twice or reserved", uint16(k)))
	}
	kinds[k] = info
}

// LookupKind returns what was registered for k.
func LookupKind(k Kind) (KindInfo, bool) {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	info, ok := kinds[k]
	return info, ok
}

// KindName is the registered name of k, or "kind-0xNNNN".
func KindName(k Kind) string {
	switch k {
	case KindBegin:
		return "begin"
	case KindEnd:
		return "end"
	}
	if info, ok := LookupKind(k); ok {
		return info.Name
	}
	return fmt.Sprintf("kind-%#04x", uint16(k))
}
