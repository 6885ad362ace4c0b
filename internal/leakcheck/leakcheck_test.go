package leakcheck

import (
	"os"
	"testing"
)

// fakeT records failures instead of failing the real test, so Check's own
// verdicts can be asserted.
type fakeT struct {
	testing.TB
	cleanups []func()
	failed   bool
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Cleanup(fn func())     { f.cleanups = append(f.cleanups, fn) }
func (f *fakeT) Errorf(string, ...any) { f.failed = true }
func (f *fakeT) Fatal(...any)          { f.failed = true }
func (f *fakeT) run() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

func TestCheckPassesWhenNothingLeaks(t *testing.T) {
	f := &fakeT{TB: t}
	Check(f)
	r, w, _ := os.Pipe()
	done := make(chan struct{})
	go func() { <-done }()
	r.Close()
	w.Close()
	close(done)
	f.run()
	if f.failed {
		t.Fatal("Check reported a leak where there was none")
	}
}

func TestCheckCatchesDescriptorLeak(t *testing.T) {
	f := &fakeT{TB: t}
	Check(f)
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	f.run()
	if !f.failed {
		t.Fatal("Check missed two open descriptors")
	}
}
