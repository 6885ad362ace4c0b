package channel

import (
	"context"
	"sync/atomic"
	"time"
)

// DefaultClientTeardownWait bounds each wait of a client channel for the
// host to finish a teardown: the CloseChannel and ring GPADL teardown of
// a close, and each GPADL still held. A host that never answers would
// otherwise hold Cleanup, and the device client's Close with it, for
// ever. When it passes, the pages stay allocated (guest.Channel.Close,
// DeleteGpadl), since the host may still use them.
const DefaultClientTeardownWait = 5 * time.Second

// clientTeardownWait is DefaultClientTeardownWait, shortened by tests.
var clientTeardownWait atomic.Int64

func init() { clientTeardownWait.Store(int64(DefaultClientTeardownWait)) }

// teardownContext is the context of one such wait.
func teardownContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Duration(clientTeardownWait.Load()))
}
