package channel

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/savedstate"
)

// TestPauseWaitsForRestartable: with SetPauseWaitsForRestartable, a Pause
// waits for a restartable packet still being processed, the packet's
// completion reaches the guest, and a save that follows records no
// restart (kind 0x0005), which a successor of an older release could not
// read.
func TestPauseWaitsForRestartable(t *testing.T) {
	leakcheck.Check(t)
	s := newSvc(t)
	old := newSlowFlush("-old")
	defer old.release() // before the cleanups: a failed test must not leave Cleanup waiting
	cs := &completions{}
	s.server = configure(t, s.Guest, newVSP(), old.process)
	if s.server.Servicing().PauseWaitsForRestartable() {
		t.Fatal("a new channel's Pause waits for restartable packets")
	}
	s.server.Servicing().SetPauseWaitsForRestartable(true)
	must(t, s.server.Enable())
	must(t, s.server.Start())
	cl := NewClient()
	must(t, cl.SetClient(s.Client))
	must(t, cl.SetInterface(testType, testInst))
	must(t, cl.SetProcessPacketCallbacks(ignore, nil))
	t.Cleanup(func() { cl.Cleanup() })
	must(t, cl.Enable())
	waitState(t, cl, StateActive)
	waitState(t, s.server, StateActive)
	cs.send(t, cl, "R1______")
	eventually(t, "the restartable packet indicated", func() bool { return len(old.indicated()) == 1 })

	paused := make(chan error, 1)
	go func() { paused <- s.server.Pause() }()
	// Only a wrong Pause returns here; a right one is still waiting.
	select {
	case err := <-paused:
		t.Fatalf("Pause returned (%v) while the restartable packet was outstanding", err)
	case <-time.After(100 * time.Millisecond):
	}
	old.release()
	select {
	case err := <-paused:
		must(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Pause did not return once the packet completed")
	}
	if n := s.server.Outstanding(); n != 0 {
		t.Fatalf("%d packets outstanding after the pause", n)
	}
	eventually(t, "the completion", func() bool { return cs.count("ok:R1______-old") == 1 })
	saved := s.Save(t)
	parts := chunks(t, s.server, []int{4096})
	if rr := restartRecords(t, bytes.Join(parts, nil)); len(rr) != 0 {
		t.Fatalf("the save records %d restartable packets", len(rr))
	}
	// The successor has nothing to do again.
	s.successor(t, saved)
	h2 := s.Host
	fresh := newSlowFlush("-new")
	defer fresh.release()
	fresh.release()
	n := configure(t, s.Guest, newVSP(), fresh.process)
	must(t, n.RestoreChunks(parts))
	must(t, n.Enable())
	must(t, n.Start())
	h2.Resume()
	s.server = n
	cs.send(t, cl, "e2______")
	eventually(t, "an echo after the restore", func() bool { return cs.count("ok:e2______") == 1 })
	if got := fresh.indicated(); len(got) != 0 || cs.total() != 2 {
		t.Fatalf("indicated again %v; completions %v, want R1-old and e2 once each", got, cs.got)
	}
}

// TestGoldenCompletionState keeps a format-1 channel state holding a
// completion record (0x0004): a restartable packet completed while its
// channel was paused, held and saved, from a real save (go test -update
// rewrites it). A later release must still decode and check it.
func TestGoldenCompletionState(t *testing.T) {
	path := filepath.Join("testdata", "golden", "channel-completion-v1.state")
	if *update {
		f := pausedWithRestart(t)
		f.old.release()
		f.old.wg.Wait() // completed while paused: held
		_, err := f.s.Host.SaveGuests()
		must(t, err)
		var buf bytes.Buffer
		must(t, f.s.server.Save(&buf))
		must(t, os.WriteFile(path, buf.Bytes(), 0o644))
		f.s.Stop() // parked by the save: the guest's channels close without it
	}
	pc, recs := checkGolden(t, path)
	if len(pc.comps) != 1 || string(bytes.TrimRight(pc.comps[0].Payload, "\x00")) != "R1______-old" || len(pc.redo) != 0 {
		t.Fatalf("completion records %+v, restart records %+v", pc.comps, pc.redo)
	}
	for _, r := range recs {
		info, ok := savedstate.LookupKind(r.Kind)
		if !ok {
			t.Fatalf("kind %#x not registered", uint16(r.Kind))
		}
		if _, err := info.Describe(r.Body); err != nil {
			t.Fatalf("%s: %v", info.Name, err)
		}
	}
}
