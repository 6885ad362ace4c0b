package transport

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// signalWatchTick is how often signalWatch looks for a stuck Signal: a
// write still in progress at two looks in a row, with no Signal of its
// Event finished in between, is freed.
const signalWatchTick = 50 * time.Millisecond

// signalWatch frees Signals stuck in their write. An eventfd write blocks
// only when the count would pass 2⁶⁴−2 and the open file is in blocking
// mode. No well-behaved peer comes near that count, but a hostile one can
// set both: it shares the open file, so it can write 2⁶⁴−2 itself and
// clear O_NONBLOCK. A check before every write would double Signal's
// cost (a second system call per signal); instead one goroutine, which
// runs while any Event is open, looks at each Event's Signal counters
// every tick and reads the count of one whose write is stuck, without
// waiting. The read wakes the write, and the 1 it adds still wakes the
// peer: the peer loses nothing but the count it pinned. A peer that pins
// the count again before the woken write runs keeps it waiting another
// tick, and has to win that race every time.
var signalWatch struct {
	mu     sync.Mutex
	events map[*Event]struct{}
	stop   chan struct{} // closes to end the goroutine
	done   chan struct{} // closed when it has ended
}

// watchState is signalWatch's view of one Event, under its lock.
type watchState struct {
	busy bool   // a write was in progress at the last look
	end  uint64 // sigEnd at the last look
}

// watchEvent adds e to signalWatch, starting its goroutine if e is the
// only open Event.
func watchEvent(e *Event) {
	signalWatch.mu.Lock()
	defer signalWatch.mu.Unlock()
	if signalWatch.events == nil {
		signalWatch.events = make(map[*Event]struct{})
	}
	signalWatch.events[e] = struct{}{}
	if signalWatch.stop == nil {
		stop, done := make(chan struct{}), make(chan struct{})
		signalWatch.stop, signalWatch.done = stop, done
		go watchSignals(stop, done)
	}
}

// unwatchEvent removes e; after the last Event it ends the goroutine and
// waits for it, so that none outlives the Events it watches.
func unwatchEvent(e *Event) {
	signalWatch.mu.Lock()
	delete(signalWatch.events, e)
	var stop, done chan struct{}
	if len(signalWatch.events) == 0 && signalWatch.stop != nil {
		stop, done = signalWatch.stop, signalWatch.done
		signalWatch.stop, signalWatch.done = nil, nil
	}
	signalWatch.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

func watchSignals(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(signalWatchTick)
	defer t.Stop()
	var stuck []*Event
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		stuck = stuck[:0]
		signalWatch.mu.Lock()
		for e := range signalWatch.events {
			end := e.sigEnd.Load()
			busy := e.sigStart.Load() != end
			if busy && e.watch.busy && e.watch.end == end {
				stuck = append(stuck, e)
			}
			e.watch = watchState{busy: busy, end: end}
		}
		signalWatch.mu.Unlock()
		for _, e := range stuck {
			e.unstick()
		}
		clear(stuck)
	}
}

// unstick frees a Signal stuck in its write: it reads e's count without
// waiting (RWF_NOWAIT; on a kernel without it for eventfds a stuck write
// stays stuck, as it would without signalWatch). It reads only a count at
// which a write can wait, as the kernel shows it in fdinfo: a Signal seen
// busy at two looks may instead have been descheduled around its write,
// and a smaller count is wake-ups the peer has not taken yet, perhaps that
// very Signal's, which a read would take from it.
func (e *Event) unstick() {
	e.control(func(fd int) error { //nolint:errcheck // a closed Event has no write left to free
		if n, ok := eventfdCount(fd); !ok || n < stuckCount {
			return nil
		}
		var b [8]byte
		var iov unix.Iovec
		iov.Base = &b[0]
		iov.SetLen(len(b))
		readNowait(uintptr(fd), &iov)
		return nil
	})
}

// stuckCount is a count from which a Signal's write may wait: an eventfd
// write blocks only when the count would pass 2⁶⁴−2. Half of that leaves
// room for any number of Signals in flight.
const stuckCount = 1 << 63

// eventfdCount is eventfd fd's count as /proc/self/fdinfo shows it (in
// hex, on the line eventfd-count), without taking it.
func eventfdCount(fd int) (uint64, bool) {
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "eventfd-count:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return n, err == nil
		}
	}
	return 0, false
}
