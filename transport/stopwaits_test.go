package transport

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestStopWaits: StopWaits ends a Wait in progress and every later one
// with ErrWaitsStopped, and neither reads the count: a signal sent before
// and one sent after are both there for another reader of the eventfd.
// Signal still works on the stopped Event.
func TestStopWaits(t *testing.T) {
	e, err := NewEvent()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	f, err := e.File()
	if err != nil {
		t.Fatal(err)
	}
	other, err := AdoptEvent(f)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	done := make(chan error, 1)
	go func() { done <- e.Wait(context.Background()) }()
	time.Sleep(20 * time.Millisecond) // in the poller
	e.StopWaits()
	select {
	case err := <-done:
		if !errors.Is(err, ErrWaitsStopped) {
			t.Fatalf("Wait in progress: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait in progress not ended by StopWaits")
	}
	if err := e.Signal(); err != nil {
		t.Fatalf("Signal after StopWaits: %v", err)
	}
	if err := e.Wait(context.Background()); !errors.Is(err, ErrWaitsStopped) {
		t.Fatalf("Wait after StopWaits: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := other.Wait(ctx); err != nil {
		t.Fatalf("the signal was not left for the other reader: %v", err)
	}
}
