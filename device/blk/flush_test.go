package blk

import (
	"bytes"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
)

// slowDisk is a file whose Sync waits until gate closes (a disk that takes
// its time), counting the calls begun.
type slowDisk struct {
	*os.File
	gate  chan struct{}
	open  sync.Once
	syncs atomic.Int32
}

func newSlowDisk(f *os.File) *slowDisk { return &slowDisk{File: f, gate: make(chan struct{})} }

func (d *slowDisk) Sync() error {
	d.syncs.Add(1)
	<-d.gate
	return d.File.Sync()
}

func (d *slowDisk) release() { d.open.Do(func() { close(d.gate) }) }

// newSlowRig is a rig whose server's disk is a slowDisk.
func newSlowRig(t *testing.T) (*rig, *slowDisk) {
	t.Helper()
	var disk *slowDisk
	r := newRigWith(t, 1<<20, ServerConfig{}, ClientConfig{}, func(f *os.File) Backend {
		disk = newSlowDisk(f)
		return disk
	})
	return r, disk
}

var waitFor = testbus.Eventually

// answered waits for n flushes to return, each without an error.
func answered(t *testing.T, errs <-chan error, n int) {
	t.Helper()
	for range n {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a flush was not answered")
		}
	}
}

// TestFlushAcrossServicing: a FLUSH waiting for its fsync does not hold up
// the server's Pause; the save records it; the successor's server flushes
// its backend again and answers it, once; the old fsync's end reaches the
// guest not at all.
func TestFlushAcrossServicing(t *testing.T) {
	leakcheck.Check(t)
	r, old := newSlowRig(t)
	defer old.release() // before the cleanups, which wait for it
	data := pattern(8192, 7)
	if _, err := r.d.WriteAt(data, 4096); err != nil {
		t.Fatal(err)
	}
	flushed := make(chan error, 2)
	go func() { flushed <- r.d.Flush() }()
	waitFor(t, "the flush at the backend", func() bool { return old.syncs.Load() > 0 })

	paused := make(chan error, 1)
	go func() { paused <- r.srv.Pause() }()
	select {
	case err := <-paused:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Pause waited for the fsync")
	}
	saved := r.Save(t)
	chunks, err := r.srv.Save()
	if err != nil {
		t.Fatal(err)
	}
	// The old fsync ends now, in the old host: nothing reaches the guest.
	old.release()
	r.Stop()
	if err := r.srv.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-flushed:
		t.Fatalf("the flush returned (%v) before the restore", err)
	default:
	}

	fresh := &slowDisk{File: r.file, gate: make(chan struct{})}
	fresh.release()
	r.Restore(t, host.Config{}, saved)
	r.srv, err = RestoreServer(r.Guest, fresh, ServerConfig{Size: 1 << 20}, chunks)
	if err != nil {
		t.Fatal(err)
	}
	r.Host.Resume()
	select {
	case err := <-flushed:
		if err != nil {
			t.Fatalf("flush after the restore: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the flush saved at the pause was not answered after the restore")
	}
	if n := fresh.syncs.Load(); n != 1 {
		t.Fatalf("the successor synced %d times, want the saved flush once", n)
	}
	got := make([]byte, len(data))
	if _, err := r.d.ReadAt(got, 4096); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after the restore: %v", err)
	}
	if err := r.d.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-flushed:
		t.Fatalf("a second answer to the first flush (%v)", err)
	default:
	}
}

// TestFlushesShareAnFsync: flushes that come while one fsync runs are all
// answered by the next one, not one fsync each.
func TestFlushesShareAnFsync(t *testing.T) {
	leakcheck.Check(t)
	r, disk := newSlowRig(t)
	defer disk.release()
	const n = 6
	errs := make(chan error, n)
	go func() { errs <- r.d.Flush() }()
	waitFor(t, "the first fsync", func() bool { return disk.syncs.Load() > 0 })
	for range n - 1 {
		go func() { errs <- r.d.Flush() }()
	}
	// All at the server, behind the first fsync.
	waitFor(t, "every flush at the server", func() bool { return r.srv.Channel().Outstanding() == n })
	disk.release()
	answered(t, errs, n)
	if got := disk.syncs.Load(); got != 2 {
		t.Fatalf("%d fsyncs for %d flushes, want 2 (the first, then one for the rest)", got, n)
	}
}

// TestNoFsyncWhilePaused: a FLUSH waiting behind a running fsync when the
// server pauses does not get an fsync of its own until Start (a
// servicing's exec would wait for it), and is answered after Start.
func TestNoFsyncWhilePaused(t *testing.T) {
	leakcheck.Check(t)
	r, disk := newSlowRig(t)
	defer disk.release()
	errs := make(chan error, 2)
	go func() { errs <- r.d.Flush() }()
	waitFor(t, "the first fsync", func() bool { return disk.syncs.Load() > 0 })
	go func() { errs <- r.d.Flush() }()
	waitFor(t, "both flushes at the server", func() bool { return r.srv.Channel().Outstanding() == 2 })
	if err := r.srv.Pause(); err != nil {
		t.Fatal(err)
	}
	disk.release() // the first fsync ends; its answer is held
	waitFor(t, "the first answer held", func() bool { return r.srv.Channel().Outstanding() == 1 })
	time.Sleep(50 * time.Millisecond) // time enough for a flusher that does not park to begin the next fsync
	if n := disk.syncs.Load(); n != 1 {
		t.Fatalf("%d fsyncs while paused, want only the one under way at the pause", n)
	}
	if err := r.srv.Start(); err != nil {
		t.Fatal(err)
	}
	answered(t, errs, 2)
	if n := disk.syncs.Load(); n != 2 {
		t.Fatalf("%d fsyncs, want 2", n)
	}
}

// TestPauseWaitsForFlushes: on a channel whose Pause waits for
// restartable packets (a servicing into a release that cannot redo a
// FLUSH), the flusher does not park: the FLUSH under way and the one
// behind it both get their fsync, are answered while the server pauses,
// and the Pause returns once they are.
func TestPauseWaitsForFlushes(t *testing.T) {
	leakcheck.Check(t)
	r, disk := newSlowRig(t)
	defer disk.release()
	defer r.srv.resumeFlushes() // a failed test must not leave the flusher parked under the cleanups
	r.srv.Channel().Servicing().SetPauseWaitsForRestartable(true)
	errs := make(chan error, 2)
	go func() { errs <- r.d.Flush() }()
	waitFor(t, "the first fsync", func() bool { return disk.syncs.Load() > 0 })
	go func() { errs <- r.d.Flush() }()
	waitFor(t, "both flushes at the server", func() bool { return r.srv.Channel().Outstanding() == 2 })
	paused := make(chan error, 1)
	go func() { paused <- r.srv.Pause() }()
	// Only a wrong Pause returns here; a right one is still waiting.
	select {
	case err := <-paused:
		t.Fatalf("Pause returned (%v) while flushes were outstanding", err)
	case <-time.After(100 * time.Millisecond):
	}
	disk.release()
	answered(t, errs, 2)
	select {
	case err := <-paused:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Pause did not return once the flushes were answered")
	}
	if n := r.srv.Channel().Outstanding(); n != 0 {
		t.Fatalf("%d requests outstanding after the pause", n)
	}
	if n := disk.syncs.Load(); n != 2 {
		t.Fatalf("%d fsyncs, want 2", n)
	}
	if err := r.srv.Start(); err != nil {
		t.Fatal(err)
	}
}
