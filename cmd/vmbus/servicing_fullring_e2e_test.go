package main

import (
	"testing"
	"time"
)

// TestE2EServicingFullRingOnce services a host 15 times while a guest
// streams through echo with more packets in flight than its incoming ring
// holds, so that echo's answers wait in the host's send queue behind a
// full ring at every save while the guest keeps reading: every answer must
// reach the guest exactly once (a paused, saved channel must not write
// its queue, which the successor sends again), and none may wait for a
// wake-up that never comes. The stream gives up only after 20 s without an
// answer, far past any blackout on a loaded machine: a stall, not a slow
// servicing, fails it.
func TestE2EServicingFullRingOnce(t *testing.T) {
	h := startServicedHost(t, vmbusBinary(t), 1<<20)
	stop := make(chan struct{})
	streams := guestLoop(t, h.socket, stop, cleanTraffic, "stream", "--payload", "512", "--count", "400000", "--window", "4096", "--idle", "20s")
	time.Sleep(300 * time.Millisecond) // traffic under way
	const n = 15
	for i := 1; i <= n; i++ {
		h.service(t, i)
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	if s := <-streams; s == 0 {
		t.Fatal("no stream ran to its end")
	}
}
