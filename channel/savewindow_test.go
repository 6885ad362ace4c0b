package channel

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/internal/leakcheck"
)

// saveAll drains an open save with SaveContinue.
func saveAll(t testing.TB, c *Channel) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, 1<<16)
	for {
		n, _, err := c.SaveContinue(buf)
		out = append(out, buf[:n]...)
		if err == nil {
			return out
		}
		if !errors.Is(err, StatusBufferOverflow) {
			t.Fatalf("SaveContinue: %v", err)
		}
	}
}

// TestSaveWindowRefusesChanges: between SaveBegin and SaveEnd every call
// that would change what the state describes is refused, so the state
// handed out is still the channel's state when the save ends.
func TestSaveWindowRefusesChanges(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	s, _ := r.pair(t, echo, echo, StateCallbacks{}, StateCallbacks{})
	must(t, s.Pause())
	p, err := s.AllocatePacket()
	must(t, err)
	must(t, s.SaveBegin())
	refused := make(map[string]error)
	refused["Send"] = p.Send([]byte("late"), SendWaitForCompletion)
	refused["TrySend"] = s.TrySend([]byte("late"))
	_, refused["SendSynchronousRequest"] = s.SendSynchronousRequest([]byte("late"), nil, 0, nil, 0)
	_, refused["MapGpadl"] = s.MapGpadl(1, guestmem.ReadOnly)
	refused["StartHeld"] = s.Servicing().StartHeld()
	refused["Start"] = s.Start()
	refused["Disable"] = s.Disable()
	for name, err := range refused {
		if !errors.Is(err, StatusInvalidDeviceState) {
			t.Errorf("%s between SaveBegin and SaveEnd: %v, want STATUS_INVALID_DEVICE_STATE", name, err)
		}
	}
	if st := s.State(); st != StatePaused {
		t.Fatalf("channel is %v after the refused calls", st)
	}
	state := saveAll(t, s)
	s.SaveEnd()
	var after bytes.Buffer
	must(t, s.Save(&after))
	sameRecords(t, state, after.Bytes())
	// The save is over: the channel moves again.
	must(t, p.Send([]byte("now"), 0))
	must(t, s.Start())
}

// TestSaveStaleWhenGuestCloses: the guest may close the channel under an
// open save, which nothing can refuse; the state saved before describes
// an open channel, so SaveContinue fails rather than hand it out.
func TestSaveStaleWhenGuestCloses(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var log recorder
	s, c := r.pair(t, echo, echo, log.callbacks(), StateCallbacks{})
	must(t, s.Pause())
	must(t, s.SaveBegin())
	must(t, c.Disable())
	eventually(t, "the server's Closed", func() bool { return strings.Contains(log.String(), "Closed") })
	if _, _, err := s.SaveContinue(make([]byte, 1<<16)); !errors.Is(err, StatusInvalidDeviceState) {
		t.Fatalf("SaveContinue after the guest closed the channel: %v", err)
	}
	s.SaveEnd()
	// A new save describes the channel as it is now.
	var buf bytes.Buffer
	must(t, s.Save(&buf))
}

// TestSaveCallsRace: SaveBegin, SaveContinue, SaveEnd and whole saves on
// many goroutines at once never panic; each call returns a status.
func TestSaveCallsRace(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	s, c := r.pair(t, echo, echo, StateCallbacks{}, StateCallbacks{})
	must(t, c.Pause())
	must(t, s.Pause())
	// Transactions make a state of many records, large ones among them:
	// the paused client leaves them in the ring, and those that do not
	// fit wait in the server's send queue with their payloads.
	for range 40 {
		p, err := s.AllocatePacket()
		must(t, err)
		must(t, p.Send(bytes.Repeat([]byte("s"), 4000), SendWaitForCompletion))
	}
	const workers, rounds = 8, 2000
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<14)
			for i := range rounds {
				var err error
				op := (w + i) % 8
				switch op {
				case 0:
					err = s.SaveBegin()
				case 6:
					s.SaveEnd()
				case 7:
					err = s.Save(io.Discard)
				default:
					_, _, err = s.SaveContinue(buf[:(i*997)%len(buf)])
				}
				switch StatusOf(err) {
				case StatusSuccess, StatusInvalidDeviceState, StatusBufferOverflow, StatusBufferTooSmall:
				default:
					if op != 7 { // a whole save may report its own error
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s.SaveEnd()
	var buf bytes.Buffer
	must(t, s.Save(&buf))
	if n := len(records(t, buf.Bytes())); n != 2+40 {
		t.Fatalf("%d records after the race, want 42", n)
	}
	must(t, s.Start())
	must(t, c.Start())
}
