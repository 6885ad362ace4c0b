package hvsock

import (
	"sync"
	"time"
)

// waitUntil waits on c, whose lock the caller holds, until ok reports
// true (checked with the lock held; it may let go of it meanwhile, if it
// takes it back) or d has passed, and reports whether ok held. Whatever
// changes what ok looks at must Broadcast on c.
func waitUntil(c *sync.Cond, d time.Duration, ok func() bool) bool {
	over := false
	t := time.AfterFunc(d, func() {
		c.L.Lock()
		over = true
		c.Broadcast()
		c.L.Unlock()
	})
	defer t.Stop()
	for !ok() {
		if over {
			return false
		}
		c.Wait()
	}
	return true
}
