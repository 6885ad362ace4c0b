package servicing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// spawnBehaviour tells the test binary, playing a spawned successor, what
// to do after it received its handover.
const spawnBehaviour = "GOVMBUS_SPAWN_TEST_BEHAVIOUR"

// spawnedRole is the test binary as a spawned successor: it receives the
// handover, reads the pipe handed over, and then, by spawnBehaviour, takes
// it over ("ok"), or refuses it
// ("fail"). "early" exits before it is ready.
func spawnedRole() int {
	behaviour := os.Getenv(spawnBehaviour)
	p, ok, err := Spawned()
	if !ok || err != nil {
		fmt.Println("spawned:", ok, err)
		return 4
	}
	if behaviour == "early" {
		return 5
	}
	ready := p.Ready
	switch behaviour {
	case "note":
		ready = func() error { return p.ReadyWith([]byte("format 1\nkind 0x0001\n")) }
	case "long-note":
		// Past what ReadyWith allows: a broken successor's message.
		ready = func() error { return p.send(msgReady, strings.Repeat("k", MaxReadyNote+1)) }
	}
	if err := ready(); err != nil {
		fmt.Println("ready:", err)
		return 4
	}
	h, err := p.Receive()
	if err != nil {
		fmt.Println("receive:", err)
		return 4
	}
	if behaviour == "fail" {
		p.Fail(errors.New("restore refused"))
		return 6
	}
	buf := make([]byte, 64)
	n, _ := unix.Read(h.FDs["pipe"], buf)
	flags, _ := unix.FcntlInt(uintptr(h.FDs["pipe"]), unix.F_GETFD, 0)
	fmt.Printf("state=%q pipe=%q paused=%d note=%q cloexec=%v fds=%d\n", h.State, buf[:n], h.Paused.UnixNano(), h.Note, flags&unix.FD_CLOEXEC != 0, len(h.FDs))
	p.Received()
	return 0
}

// spawnTest spawns the test binary as a successor with behaviour and
// returns it and where its output goes.
func spawnTest(t *testing.T, behaviour string) (*Successor, *os.File) {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), roleVar+"=spawned", spawnBehaviour+"="+behaviour)
	// The successor's stdout is this process's: point it at out for
	// the spawn.
	saved := os.Stdout
	os.Stdout = out
	s, err := Spawn(os.Args[0], []string{os.Args[0], "-test.run=^$"}, env)
	os.Stdout = saved
	if err != nil {
		t.Fatal(err)
	}
	return s, out
}

func output(t *testing.T, f *os.File) string {
	t.Helper()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// readyThenHand waits for s to be ready and hands it a pipe (handPipe).
func readyThenHand(t *testing.T, s *Successor) {
	t.Helper()
	if err := s.WaitReady(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	handPipe(t, s)
}

// handPipe hands a pipe with "through the pipe" in it and 300 more
// descriptors (more than one message takes) to s.
func handPipe(t *testing.T, s *Successor) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	w.Write([]byte("through the pipe"))
	fds := map[string]int{"pipe": int(r.Fd())}
	for i := range 300 {
		fds[fmt.Sprintf("extra%03d", i)] = int(w.Fd())
	}
	if err := s.Hand(Handover{FDs: fds, State: []byte("saved state bytes"), Paused: time.Unix(0, 12345), Note: "a;note"}); err != nil {
		t.Fatal(err)
	}
}

func TestSpawnHandsOverFilesAndState(t *testing.T) {
	s, out := spawnTest(t, "ok")
	defer s.Abort()
	readyThenHand(t, s)
	if err := s.WaitReceived(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := s.proc.Wait(); err != nil {
		t.Fatal(err)
	}
	want := `state="saved state bytes" pipe="through the pipe" paused=12345 note="a;note" cloexec=true fds=301`
	if got := output(t, out); got != want {
		t.Fatalf("successor printed\n%s\nwant\n%s", got, want)
	}
}

func TestSpawnedFailureBeforeReceived(t *testing.T) {
	s, _ := spawnTest(t, "fail")
	defer s.Abort()
	readyThenHand(t, s)
	if err := s.WaitReceived(10 * time.Second); err == nil || !strings.Contains(err.Error(), "restore refused") {
		t.Fatalf("WaitReceived: %v", err)
	}
}

func TestSpawnedExitsBeforeReady(t *testing.T) {
	s, _ := spawnTest(t, "early")
	defer s.Abort()
	if err := s.WaitReady(10 * time.Second); !errors.Is(err, ErrSuccessorGone) {
		t.Fatalf("WaitReady: %v", err)
	}
}

func TestSpawnWaitTimesOut(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	s := &Successor{sock: fds[0]}
	defer unix.Close(fds[0])
	start := time.Now()
	if err := s.WaitReady(50 * time.Millisecond); !errors.Is(err, errTimeout) {
		t.Fatalf("WaitReady: %v", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
		t.Fatalf("timed out after %v", d)
	}
}

// TestSpawnWaitEndsWithContext: a successor that says nothing holds
// WaitReadyContext only until its context ends, not for its timeout.
func TestSpawnWaitEndsWithContext(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	s := &Successor{sock: fds[0]}
	defer unix.Close(fds[0])
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.WaitReadyContext(ctx, time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitReadyContext: %v, want the context's error", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("ended after %v, its context after 100 ms", d)
	}
}

func TestSpawnedWithoutVariable(t *testing.T) {
	os.Unsetenv(SuccessorVar)
	if _, ok, err := Spawned(); ok || err != nil {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	for _, v := range []string{"x", "1", "999999"} {
		os.Setenv(SuccessorVar, v)
		if _, ok, err := Spawned(); !ok || !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: ok=%v err=%v", v, ok, err)
		}
	}
}

func TestHandBodyRoundTrip(t *testing.T) {
	h := Handover{FDs: map[string]int{"b": 7, "a": 5, "c": 9}, State: []byte("state"), Paused: time.Unix(0, 99), Note: "n"}
	b, fds, err := handBody(h)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(fds) != "[5 7 9]" {
		t.Fatalf("descriptors in order %v", fds)
	}
	got, names, err := decodeHandBody(b, 3)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(names) != "[a b c]" || string(got.State) != "state" || got.Note != "n" || got.Paused.UnixNano() != 99 {
		t.Fatalf("decoded %+v %v", got, names)
	}
	if _, _, err := decodeHandBody(b, 2); !errors.Is(err, ErrMalformed) {
		t.Fatalf("wrong descriptor count: %v", err)
	}
	for cut := range len(b) {
		if _, _, err := decodeHandBody(b[:cut], 3); !errors.Is(err, ErrMalformed) {
			t.Fatalf("cut at %d: %v", cut, err)
		}
	}
	if _, _, err := decodeHandBody(append(bytes.Clone(b), 0), 3); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: %v", err)
	}
}

// FuzzDecodeHandBody: a spawned handover's body never panics the
// successor, and what it accepts lays out again to the same bytes.
func FuzzDecodeHandBody(f *testing.F) {
	b, _, _ := handBody(Handover{FDs: map[string]int{"listener": 3, "g0.conn": 4}, State: []byte("st"), Paused: time.Unix(0, 5), Note: "1;pause=0.5"})
	f.Add(b, 2)
	f.Add(b, 1)
	f.Add([]byte("GVHO"), 0)
	f.Fuzz(func(t *testing.T, b []byte, nfds int) {
		h, names, err := decodeHandBody(b, nfds)
		if err != nil {
			return
		}
		h.FDs = make(map[string]int, len(names))
		for i, n := range names {
			h.FDs[n] = i
		}
		again, _, err := handBody(h)
		if err != nil {
			return // a name handBody refuses (too long) is the sender's error
		}
		if !bytes.Equal(again, b) && sortedNamesEqual(names) {
			t.Fatalf("decoded %+v, laid out again differently", h)
		}
	})
}

// sortedNamesEqual reports whether names are in handBody's order, the
// only order in which a round trip gives the same bytes.
func sortedNamesEqual(names []string) bool {
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			return false
		}
	}
	return true
}

// TestSpawnReadyNote: what a successor says with its ready message
// reaches the predecessor whole; one that says nothing (an older release)
// gives an empty note; one longer than MaxReadyNote is refused, not cut.
func TestSpawnReadyNote(t *testing.T) {
	for _, tc := range []struct {
		behaviour, note string
		fails           bool
	}{{"ok", "", false}, {"note", "format 1\nkind 0x0001\n", false}, {"long-note", "", true}} {
		s, _ := spawnTest(t, tc.behaviour)
		err := s.WaitReady(10 * time.Second)
		if tc.fails {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: %v, want ErrMalformed", tc.behaviour, err)
			}
		} else if err != nil || string(s.ReadyNote()) != tc.note {
			t.Errorf("%s: note %q, %v; want %q", tc.behaviour, s.ReadyNote(), err, tc.note)
		}
		s.Abort()
	}
	var p Predecessor
	if err := p.ReadyWith(make([]byte, MaxReadyNote+1)); err == nil {
		t.Error("ReadyWith sent a note longer than MaxReadyNote")
	}
}
