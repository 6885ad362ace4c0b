package pipe

import (
	"bytes"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/internal/testbus"
)

// streamLog is one record of a stream as its two consumers took it: the
// direct function and the Read, in the order they took it.
type streamLog struct {
	mu      sync.Mutex
	b       []byte
	directN int
}

// take is a direct function that takes at most limit bytes a call.
func (l *streamLog) take(limit int) DirectFunc {
	return func(bufs [][]byte) int {
		l.mu.Lock()
		defer l.mu.Unlock()
		n := 0
		for _, b := range bufs {
			m := min(len(b), limit-n)
			l.b = append(l.b, b[:m]...)
			if n += m; n == limit {
				break
			}
		}
		l.directN += n
		return n
	}
}

func (l *streamLog) add(b []byte) {
	l.mu.Lock()
	l.b = append(l.b, b...)
	l.mu.Unlock()
}

// readAll reads c to its end into l, and sends Read's error (nil at the
// end of stream) and the bytes Read returned.
func readAll(c *Conn, l *streamLog, done chan<- [2]any) {
	buf := make([]byte, 64)
	var got int
	for {
		n, err := c.Read(buf)
		l.add(buf[:n])
		got += n
		if err == io.EOF {
			done <- [2]any{nil, got}
			return
		}
		if err != nil {
			done <- [2]any{err, got}
			return
		}
	}
}

// directReading gives r's server a direct function that takes all it is
// given, and a Read on a goroutine of its own (readAll, into the log it
// returns, with done), and waits until the Read waits.
func directReading(t *testing.T, r *rig) (*streamLog, chan [2]any) {
	t.Helper()
	l := new(streamLog)
	r.server.SetDirect(l.take(1 << 20))
	r.server.SetReadDeadline(time.Now().Add(testbus.Timeout))
	done := make(chan [2]any, 1)
	go readAll(r.server, l, done)
	waitReading(t, r.server, l, 0)
	return l, done
}

// writeBatch pauses r's server and writes n packets of 100 bytes from the
// client ("aaa…", "bbb…", …), which the server reads as one batch once it
// starts, and returns them joined.
func writeBatch(t *testing.T, r *rig, n int) []byte {
	t.Helper()
	must(t, r.sch.Pause())
	var sent []byte
	for i := range n {
		p := bytes.Repeat([]byte{byte('a' + i)}, 100)
		sent = append(sent, p...)
		if _, err := r.client.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	return sent
}

// waitReading waits until l holds n bytes and a Read waits again.
func waitReading(t *testing.T, c *Conn, l *streamLog, n int) {
	t.Helper()
	testbus.Eventually(t, "the bytes taken and a Read waiting", func() bool {
		l.mu.Lock()
		got := len(l.b)
		l.mu.Unlock()
		c.rmu.Lock()
		defer c.rmu.Unlock()
		return got == n && c.waiting
	})
}

// While a Read waits, a packet goes to the direct function first, and
// what it leaves to the Read, which then wakes: the two together are the
// stream, in order, each byte once; the end of stream still reaches the
// Read.
func TestDirectTakesWhileReadWaits(t *testing.T) {
	r := newRig(t, rigConfig{mode: channel.PipeByte})
	var l streamLog
	r.server.SetDirect(l.take(5))
	r.server.SetReadDeadline(time.Now().Add(testbus.Timeout))
	done := make(chan [2]any, 1)
	go readAll(r.server, &l, done)
	var sent []byte
	for i := range 10 {
		p := bytes.Repeat([]byte{byte('a' + i)}, 3+i)
		waitReading(t, r.server, &l, len(sent)) // the last packet taken, whoever took it
		sent = append(sent, p...)
		if _, err := r.client.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	waitReading(t, r.server, &l, len(sent)) // else the end may come in the last packet's batch
	must(t, r.client.CloseWrite())
	res := <-done
	if res[0] != nil {
		t.Fatalf("Read: %v", res[0])
	}
	if !bytes.Equal(l.b, sent) {
		t.Fatalf("the stream as taken:\n%q\nwant\n%q", l.b, sent)
	}
	// Each packet: 5 bytes to the direct function (all of the first two),
	// the rest to the Read.
	if wantDirect := 3 + 4 + 5*8; l.directN != wantDirect || res[1].(int) != len(sent)-wantDirect {
		t.Fatalf("direct took %d, Read %d; want %d and %d", l.directN, res[1], wantDirect, len(sent)-wantDirect)
	}
	// Outstanding also counts the packet objects the receive loop took
	// ahead for its batch until the batch ends, which may be after the
	// Read saw the end: exact between batches (channel.Outstanding).
	testbus.Eventually(t, "no packet held after the end", func() bool { return r.server.Channel().Outstanding() == 0 })
}

// A batch longer than the packets the Conn may hold goes to the direct
// function as the Conn's packets run out, not at the batch's end: the
// channel reads no further packet until one is completed, so the batch's
// end would never come.
func TestDirectPoolFull(t *testing.T) {
	r := newRig(t, rigConfig{mode: channel.PipeByte, server: Config{MaxPackets: 2}, ringPages: 8})
	l, done := directReading(t, r)
	sent := writeBatch(t, r, 8)
	must(t, r.sch.Start())
	testbus.Eventually(t, "the batch taken by the direct function", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.directN == len(sent)
	})
	must(t, r.client.CloseWrite())
	if res := <-done; res[0] != nil || res[1].(int) != 0 {
		t.Fatalf("Read: %v after %d bytes; want the end and no byte", res[0], res[1])
	}
	if !bytes.Equal(l.b, sent) {
		t.Fatalf("the stream as taken:\n%q\nwant\n%q", l.b, sent)
	}
}

// The end of stream in the same batch as packets held for the direct
// function wakes the Read: the packets still come before the end, once
// each, whoever takes them.
func TestDirectEndInBatch(t *testing.T) {
	for range 20 {
		r := newRig(t, rigConfig{mode: channel.PipeByte, ringPages: 8})
		l, done := directReading(t, r)
		sent := writeBatch(t, r, 3)
		must(t, r.client.CloseWrite())
		must(t, r.sch.Start())
		if res := <-done; res[0] != nil {
			t.Fatalf("Read: %v", res[0])
		}
		l.mu.Lock()
		got := bytes.Clone(l.b)
		l.mu.Unlock()
		if !bytes.Equal(got, sent) {
			t.Fatalf("the stream as taken:\n%q\nwant\n%q", got, sent)
		}
	}
}

// A Read that takes packets which came while it did not wait takes
// their wake-up too: the next Read waits rather than wake at once for
// nothing, and a packet that comes meanwhile goes to the direct function.
func TestReadTakesItsWakeup(t *testing.T) {
	r := newRig(t, rigConfig{mode: channel.PipeByte})
	if _, err := r.client.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	testbus.Eventually(t, "the packet held", func() bool { return r.server.UnreadLen() == 3 })
	buf := make([]byte, 8)
	if n, err := r.server.Read(buf); err != nil || string(buf[:n]) != "abc" {
		t.Fatalf("Read: %q, %v", buf[:n], err)
	}
	if n := len(r.server.rwake); n != 0 {
		t.Fatalf("%d wake-ups left after the Read took the packet, want 0", n)
	}
}

// A channel paused in the middle of a batch whose packets are held for
// the direct function never reaches that batch's end: the pause's
// Suspend wakes the Read, which takes them while the channel is paused,
// and the rest of the stream follows after Start, in order.
func TestDirectPauseInBatch(t *testing.T) {
	var (
		ends     atomic.Int32 // ProcessingComplete calls
		armed    atomic.Bool  // the next data packet pauses the channel
		paused   = make(chan error, 1)
		cut      = make(chan int32, 1) // ends as the pause began
		srv      *channel.Channel
		stateErr atomic.Value
	)
	wrap := func(process channel.ProcessPacketFunc, end channel.ProcessingCompleteFunc) (channel.ProcessPacketFunc, channel.ProcessingCompleteFunc) {
		return func(ch *channel.Channel, p *channel.Packet, payload []byte, flags channel.PacketFlags) {
				process(ch, p, payload, flags)
				if !armed.Swap(false) {
					return
				}
				// The packet is held; the pause begins before the loop
				// reads the next one of its batch, and this goroutine's
				// return lets it complete.
				cut <- ends.Load()
				go func() { paused <- srv.Pause() }()
				deadline := time.Now().Add(testbus.Timeout)
				for ch.State() != channel.StatePaused {
					if time.Now().After(deadline) {
						stateErr.Store("the pause did not begin")
						return
					}
					time.Sleep(time.Millisecond)
				}
			}, func(ch *channel.Channel, n int) {
				ends.Add(1)
				end(ch, n)
			}
	}
	r := newRig(t, rigConfig{mode: channel.PipeByte, ringPages: 8, wrapServer: wrap})
	srv = r.sch
	l, done := directReading(t, r)
	sent := writeBatch(t, r, 3)
	armed.Store(true)
	must(t, r.sch.Start())
	before := <-cut
	if err := <-paused; err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if v := stateErr.Load(); v != nil {
		t.Fatal(v)
	}
	// Paused: the first packet reached the Read, not the direct
	// function, and its batch did not end.
	testbus.Eventually(t, "the held packet read during the pause", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.b) == 100
	})
	l.mu.Lock()
	directN := l.directN
	l.mu.Unlock()
	if directN != 0 || ends.Load() != before {
		t.Fatalf("during the pause: direct took %d bytes, %d batch ends; want 0 and 0", directN, ends.Load()-before)
	}
	if h := r.sch.Outstanding(); h != 0 {
		t.Fatalf("%d packets outstanding in the pause, want 0", h)
	}
	must(t, r.sch.Start())
	waitReading(t, r.server, l, len(sent))
	must(t, r.client.CloseWrite())
	if res := <-done; res[0] != nil {
		t.Fatalf("Read: %v", res[0])
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !bytes.Equal(l.b, sent) {
		t.Fatalf("the stream as taken:\n%q\nwant\n%q", l.b, sent)
	}
}
