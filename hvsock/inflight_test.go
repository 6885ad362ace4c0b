package hvsock

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
	"github.com/govmbus/govmbus/savedstate"
)

// inflightRig is a relay to a local Unix listener whose dials a test can
// hold (testHookDial: each dial waits for a value on dials).
type inflightRig struct {
	*rig
	ll    net.Listener
	rl    *Relay
	dials chan struct{} // one value lets one held dial go on
	held  chan struct{} // a dial is held
}

func newInflightRig(t *testing.T) *inflightRig { return newInflightRigConfig(t, Config{}) }

func newInflightRigConfig(t *testing.T, cfg Config) *inflightRig {
	t.Helper()
	ir := &inflightRig{rig: newRig(t, cfg, host.Limits{}, guest.Config{}), dials: make(chan struct{}), held: make(chan struct{}, 8)}
	var err error
	if ir.ll, err = net.Listen("unix", t.TempDir()+"/local.sock"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ir.ll.Close() })
	testHookDial = func() {
		ir.held <- struct{}{}
		<-ir.dials
	}
	if ir.rl, err = ir.srv.Relay(Route{Service: svc5000, Network: "unix", Address: ir.ll.Addr().String()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		close(ir.dials) // a dial a failed test left held goes on
		ir.rl.Close()
		testHookDial = nil // the relay's goroutines are done
	})
	return ir
}

// dial connects the guest to the relay's service; the relay's dial of
// the local socket is held until letDial.
func (ir *inflightRig) dial(t *testing.T) *Conn {
	t.Helper()
	gc, err := DialContext(testbus.Context(t), ir.Client, svc5000)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gc.Close() })
	return gc
}

// awaitDial waits until a local dial is held.
func (ir *inflightRig) awaitDial(t *testing.T) {
	t.Helper()
	select {
	case <-ir.held:
	case <-time.After(testbus.Timeout):
		t.Fatal("no local dial began")
	}
}

// letDial waits for a held dial, lets it go on and returns the local end
// it makes.
func (ir *inflightRig) letDial(t *testing.T) net.Conn {
	t.Helper()
	ir.awaitDial(t)
	return ir.release(t)
}

// release lets a held dial, awaited, go on and returns the local end it
// makes.
func (ir *inflightRig) release(t *testing.T) net.Conn {
	t.Helper()
	ir.dials <- struct{}{}
	lc, err := ir.ll.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lc.Close() })
	return lc
}

// exchange sends up from the guest and down from the local end, and
// checks that each arrives whole.
func exchange(t *testing.T, gc *Conn, lc net.Conn, up, down string) {
	t.Helper()
	deadline := time.Now().Add(testbus.Timeout)
	gc.SetDeadline(deadline)
	lc.SetDeadline(deadline)
	for _, x := range []struct {
		w    io.Writer
		r    io.Reader
		data string
	}{{gc, lc, up}, {lc, gc, down}} {
		if _, err := x.w.Write([]byte(x.data)); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, len(x.data))
		if _, err := io.ReadFull(x.r, b); err != nil || string(b) != x.data {
			t.Fatalf("read %q, %v; want %q", b, err, x.data)
		}
	}
}

// saveAndResume saves each carried connection (its state must decode)
// and resumes it, as a servicing that fails before its handover does.
func saveAndResume(t *testing.T, carried []*Carried) {
	t.Helper()
	for _, c := range carried {
		st, f, err := c.Save()
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		var e savedstate.Encoder
		st.Encode(&e)
		if _, err := DecodeConnState(e.Body()); err != nil {
			t.Fatalf("a saved state that does not decode: %v", err)
		}
		c.Resume()
	}
}

// waiting fails t if the pause whose result comes on ch has returned
// within 50 ms: it should be waiting, while what.
func waiting(t *testing.T, ch <-chan []*Carried, what string) {
	t.Helper()
	select {
	case c := <-ch:
		t.Fatalf("the pause returned %d connections while %s", len(c), what)
	case <-time.After(50 * time.Millisecond):
	}
}

// goesOn checks that carried is one connection, saves and resumes it and
// the relay's accepting, as a failed servicing does, and exchanges bytes
// through gc and lc.
func (ir *inflightRig) goesOn(t *testing.T, carried []*Carried, gc *Conn, lc net.Conn) {
	t.Helper()
	if len(carried) != 1 {
		t.Fatalf("the pause carried %d connections, want 1", len(carried))
	}
	saveAndResume(t, carried)
	ir.rl.ResumeAccept()
	exchange(t, gc, lc, "up", "down")
}

// missDial has a pause miss a guest connection: its local dial outlasts
// the pause's wait (shortened to 20 ms). Then the dial ends.
func (ir *inflightRig) missDial(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	ir.rl.dialWait = 20 * time.Millisecond
	gc := ir.dial(t)
	ir.awaitDial(t)
	if c := ir.rl.Pause(); len(c) != 0 {
		t.Fatalf("Pause carried %d connections, want none: the only one was still dialing", len(c))
	}
	return gc, ir.release(t)
}

// TestPauseCarriesDialInProgress: a guest connection whose local dial is
// still running when a pause begins is carried: Pause waits for the
// dial, and the connection is among those it paused, its state saved,
// and after the resume it relays both ways. Before, Pause returned
// without it, and the connection went on unpaused, left out of the
// servicing's state.
func TestPauseCarriesDialInProgress(t *testing.T) {
	leakcheck.Check(t)
	ir := newInflightRig(t)
	ir.rl.dialWait = time.Minute // the dial is let go long before
	gc := ir.dial(t)
	ir.awaitDial(t)
	paused := make(chan []*Carried, 1)
	go func() { paused <- ir.rl.Pause() }()
	// Pause must wait for the held dial (a pause that did not wait would
	// have returned by now).
	waiting(t, paused, "a dial was in progress")
	lc := ir.release(t)
	ir.goesOn(t, <-paused, gc, lc)
}

// TestPauseDialWaitBound: a dial still running when PauseDialWait
// (shortened here) has passed is not waited for further: Pause returns
// without it. The connection then goes on once its dial ends, and a
// later PauseLate (the servicing's, once the bus is parked) carries it.
func TestPauseDialWaitBound(t *testing.T) {
	leakcheck.Check(t)
	ir := newInflightRig(t)
	gc, lc := ir.missDial(t)
	ir.rl.dialWait = time.Minute
	ir.goesOn(t, ir.rl.PauseLate(), gc, lc)
}

// TestPauseLateCarriesNewConns: connections the guest opens after Pause
// wait in the held listener's queue, undialed, and PauseLate carries
// them. The relay's other connection, paused by Pause, is not paused
// twice. After ResumeAccept all of them relay, and so does a connection
// made after it: the accept loop goes on.
func TestPauseLateCarriesNewConns(t *testing.T) {
	leakcheck.Check(t)
	ir := newInflightRig(t)
	gc0 := ir.dial(t)
	lc0 := ir.letDial(t)
	exchange(t, gc0, lc0, "before", "BEFORE")
	first := ir.rl.Pause()
	if len(first) != 1 {
		t.Fatalf("Pause carried %d connections, want 1", len(first))
	}
	gc1, gc2 := ir.dial(t), ir.dial(t)
	select {
	case <-ir.held:
		t.Fatal("a connection opened after Pause was dialed before PauseLate: the accept loop is not held")
	case <-time.After(20 * time.Millisecond):
	}
	late := make(chan []*Carried, 1)
	go func() { late <- ir.rl.PauseLate() }()
	lc1, lc2 := ir.letDial(t), ir.letDial(t)
	carried := <-late
	if len(carried) != 2 {
		t.Fatalf("PauseLate carried %d connections, want the 2 opened after Pause", len(carried))
	}
	saveAndResume(t, append(first, carried...))
	ir.rl.ResumeAccept()
	exchange(t, gc0, lc0, "after", "AFTER")
	// Which local end is whose depends on the order of the dials.
	whose := map[string]net.Conn{}
	for i, gc := range []*Conn{gc1, gc2} {
		if _, err := gc.Write([]byte{'1' + byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, lc := range []net.Conn{lc1, lc2} {
		b := make([]byte, 1)
		lc.SetReadDeadline(time.Now().Add(testbus.Timeout))
		if _, err := io.ReadFull(lc, b); err != nil {
			t.Fatal(err)
		}
		whose[string(b)] = lc
	}
	if whose["1"] == nil || whose["2"] == nil {
		t.Fatalf("the local ends read %v, want 1 and 2", whose)
	}
	exchange(t, gc1, whose["1"], "one", "ONE")
	exchange(t, gc2, whose["2"], "two", "TWO")
	gc3 := ir.dial(t)
	lc3 := ir.letDial(t)
	exchange(t, gc3, lc3, "new", "NEW")
}

// TestPauseLateWaitsForDelivery: a connection the guest has opened but
// whose offer's goroutine has not yet put it in the listener's queue
// (held there by testHookDeliver) is waited for: PauseLate does not
// return without it, and carries it once it arrives. Before, PauseLate
// found the queue empty and the connection was left to the successor's
// rescind.
func TestPauseLateWaitsForDelivery(t *testing.T) {
	leakcheck.Check(t)
	// Cleanups run last to first: the hook goes after the server.
	t.Cleanup(func() { testHookDeliver = nil })
	ir := newInflightRig(t)
	ir.rl.dialWait = time.Minute
	deliver := make(chan struct{})
	var once sync.Once
	let := func() { once.Do(func() { close(deliver) }) }
	t.Cleanup(let)
	testHookDeliver = func() { <-deliver }
	gc := ir.dial(t)
	if c := ir.rl.Pause(); len(c) != 0 {
		t.Fatalf("Pause carried %d connections, want none: the only one is held on its way", len(c))
	}
	late := make(chan []*Carried, 1)
	go func() { late <- ir.rl.PauseLate() }()
	waiting(t, late, "a connection was on its way to the queue")
	let()
	lc := ir.letDial(t)
	ir.goesOn(t, <-late, gc, lc)
}

// TestResumeAcceptStartsLateDial: a connection whose dial outlasted the
// pause's wait starts stopped, as every connection dialed while a pause
// holds the relay does; when the servicing fails instead (ResumeAccept
// without a PauseLate), it goes on.
func TestResumeAcceptStartsLateDial(t *testing.T) {
	leakcheck.Check(t)
	ir := newInflightRig(t)
	gc, lc := ir.missDial(t)
	for end := time.Now().Add(testbus.Timeout); ir.rl.Conns() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the dialed connection was not added")
		}
	}
	ir.rl.ResumeAccept()
	exchange(t, gc, lc, "up", "down")
}

// lingeringConns is how many connections of s linger.
func (s *Server) lingeringConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lingering
}

// lingerUnread makes a relayed connection that ended (both FINs passed)
// and lingers: the guest has not read its last bytes, which it returns.
func (ir *inflightRig) lingerUnread(t *testing.T) (*Conn, []byte) {
	t.Helper()
	gc := ir.dial(t)
	lc := ir.letDial(t).(*net.UnixConn)
	// More than the guest's pipe takes from the ring (guestMaxBuffered),
	// and what is left fits the ring: the relay's write ends, and the ring
	// holds the rest until the guest reads.
	last := make([]byte, guestMaxBuffered+96<<10)
	for i := range last {
		last[i] = byte(i * 7)
	}
	deadline := time.Now().Add(testbus.Timeout)
	lc.SetDeadline(deadline)
	gc.SetDeadline(deadline)
	if _, err := lc.Write(last); err != nil {
		t.Fatal(err)
	}
	if err := lc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := gc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(lc); err != nil || len(b) != 0 {
		t.Fatalf("the local end read %d bytes, %v; want the guest's FIN", len(b), err)
	}
	for ir.srv.lingeringConns() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the ended connection does not linger")
		}
		time.Sleep(time.Millisecond)
	}
	return gc, last
}

// TestPauseLateWaitsForLinger: a relayed connection that ended (both
// directions passed their FIN) while the guest has not yet read its last
// bytes lingers, and is no relay's to carry any more. PauseLate waits
// for the guest to read them: the successor's rescind of the channel
// must not overtake that read. Before, the rescind could come first, and
// the guest's read ended in a reset with bytes still in its ring.
func TestPauseLateWaitsForLinger(t *testing.T) {
	leakcheck.Check(t)
	ir := newInflightRig(t)
	ir.rl.guestWait = time.Minute
	gc, last := ir.lingerUnread(t)
	ir.rl.Pause()
	late := make(chan []*Carried, 1)
	go func() { late <- ir.rl.PauseLate() }()
	waiting(t, late, "the guest had not read a connection's last bytes")
	b, err := io.ReadAll(gc)
	if err != nil || !bytes.Equal(b, last) {
		t.Fatalf("the guest read %d bytes, %v; want the %d the local end sent", len(b), err, len(last))
	}
	if c := <-late; len(c) != 0 {
		t.Fatalf("PauseLate carried %d connections, want none: the only one ended", len(c))
	}
	ir.rl.ResumeAccept()
}

// TestLingerEndsWhenGuestCloses: a connection that ended lingers while
// the guest has not read its last bytes; a guest that goes away instead
// (its bus connection closes, and with it the channel) ends the linger at
// once, not at LingerTimeout (a minute here). Before, the linger waited
// for the guest to open the server's channel again, and a servicing that
// waited for it (PauseLate) waited its full bound.
func TestLingerEndsWhenGuestCloses(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, Config{LingerTimeout: time.Minute}, host.Limits{}, guest.Config{})
	l, err := r.srv.Listen(svc5000)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	gc, err := DialContext(testbus.Context(t), r.Client, svc5000)
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close() // after its Client: its FIN goes to rings still mapped
	hc := acceptWithin(t, hostAccept(l))
	// More than the guest's pipe takes from the ring: the rest stays
	// there, and the host's close lingers.
	if _, err := hc.Write(make([]byte, guestMaxBuffered+96<<10)); err != nil {
		t.Fatal(err)
	}
	if err := hc.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(testbus.Timeout)
	for r.srv.lingeringConns() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the closed connection does not linger")
		}
		time.Sleep(time.Millisecond)
	}
	r.Client.Close() // the guest goes away
	start := time.Now()
	for r.srv.lingeringConns() != 0 {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the linger goes on after the guest went away")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPauseLateLingerBound: a guest that does not read a lingering
// connection's last bytes holds a pause for PauseGuestWait at most
// (shortened here; the other waits are a minute): PauseLate returns and
// logs the wait that ran out.
func TestPauseLateLingerBound(t *testing.T) {
	leakcheck.Check(t)
	var logs lockedLog
	ir := newInflightRigConfig(t, Config{LingerTimeout: time.Minute, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ir.rl.dialWait, ir.rl.guestWait = time.Minute, 20*time.Millisecond
	ir.lingerUnread(t)
	ir.rl.Pause()
	late := make(chan []*Carried, 1)
	go func() { late <- ir.rl.PauseLate() }()
	select {
	case <-late:
	case <-time.After(testbus.Timeout):
		t.Fatal("PauseLate still waits for a guest that does not read")
	}
	if !strings.Contains(logs.String(), `for="lingering connections"`) {
		t.Fatalf("the log does not say which wait ran out:\n%s", logs.String())
	}
	ir.rl.ResumeAccept()
}

// lockedLog is a log sink for concurrent writers.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(b)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
