package blk

import (
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/internal/leakcheck"
)

// stuckDisk is a file whose every read, write and sync waits until gate
// closes: a host whose disk never answers.
type stuckDisk struct {
	*os.File
	gate chan struct{}
	once sync.Once
}

func (d *stuckDisk) ReadAt(p []byte, off int64) (int, error) {
	<-d.gate
	return d.File.ReadAt(p, off)
}

func (d *stuckDisk) WriteAt(p []byte, off int64) (int, error) {
	<-d.gate
	return d.File.WriteAt(p, off)
}

func (d *stuckDisk) Sync() error {
	<-d.gate
	return d.File.Sync()
}

func (d *stuckDisk) release() { d.once.Do(func() { close(d.gate) }) }

// TestHostDoesNotAnswer: a ReadAt, WriteAt or Flush the host leaves
// unanswered fails after ClientConfig.Timeout with guest.ErrProtocol, and
// the disk with it, instead of waiting for ever. (Each takes the channel's
// teardown wait more, as the stuck host does not close the channel
// either: hence in parallel.)
func TestHostDoesNotAnswer(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct {
		name string
		op   func(d *Disk) error
	}{
		{"read", func(d *Disk) error { _, err := d.ReadAt(make([]byte, 8192), 0); return err }},
		{"write", func(d *Disk) error { _, err := d.WriteAt(make([]byte, 8192), 4096); return err }},
		{"flush", func(d *Disk) error { return d.Flush() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var disk *stuckDisk
			r := newRigWith(t, 1<<20, ServerConfig{}, ClientConfig{Timeout: 200 * time.Millisecond}, func(f *os.File) Backend {
				disk = &stuckDisk{File: f, gate: make(chan struct{})}
				return disk
			})
			t.Cleanup(disk.release) // before the rig's: the server then closes
			done := make(chan error, 1)
			go func() { done <- tc.op(r.d) }()
			select {
			case err := <-done:
				if !errors.Is(err, guest.ErrProtocol) {
					t.Errorf("%s: %v, want guest.ErrProtocol", tc.name, err)
				}
				t.Logf("%s: %v", tc.name, err)
			case <-time.After(10 * time.Second):
				disk.release()
				<-done
				t.Fatalf("%s still waits for the host after 10 s", tc.name)
			}
			if _, err := r.d.ReadAt(make([]byte, 512), 0); err == nil {
				t.Error("the disk still reads after the host failed to answer")
			}
		})
	}
}
