package channel

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/savedstate"
)

// shortVSPBytes re-frames state with the VSP bytes of its k-th packet
// record (from 1) one byte short: a state whose container and checksums
// are right and whose VSP part the VSP's restore-packet callback refuses.
func shortVSPBytes(t *testing.T, state []byte, k int) []byte {
	t.Helper()
	b, rs, err := savedstate.Parse(state, savedstate.Limits{})
	must(t, err)
	seen := 0
	for i, r := range rs {
		if r.Kind != KindChannelPacket {
			continue
		}
		if seen++; seen == k {
			rs[i].Body = shortVSPBody(t, r.Body)
		}
	}
	sv, err := savedstate.NewSaver(b.Scope, b.Identity, rs)
	must(t, err)
	return sv.Bytes()
}

// shortVSPBody is a packet record's body with its VSP bytes one short.
func shortVSPBody(t testing.TB, body []byte) []byte {
	t.Helper()
	pr, err := decodePacket(body)
	must(t, err)
	var e savedstate.Encoder
	e.Bytes(pr.lib).Bytes(pr.VSP[:len(pr.VSP)-1])
	return e.Body()
}

// TestRestorePacketFailureUndone: a restore-packet callback that fails
// half-way (its own error, or the VSP bytes of a packet it refuses) fails
// the restore with StatusInvalidParameter wrapping the cause, frees the
// saved slots — the same state then restores into the channel, before the
// VSP frees anything, and every transaction completes — and leaves the
// packets restored before it idle, for the VSP to free.
func TestRestorePacketFailureUndone(t *testing.T) {
	vspErr := errors.New("vsp: out of memory")
	for _, tc := range []struct {
		name  string
		state func(f *fixture) []byte
		fail  func(call int) error
		cause string
	}{
		{"callback error", func(f *fixture) []byte { return f.state }, func(call int) error {
			if call == 3 {
				return vspErr
			}
			return nil
		}, vspErr.Error()},
		{"bad VSP bytes", func(f *fixture) []byte { return shortVSPBytes(t, f.state, 3) }, func(int) error { return nil }, "vsp state of 7 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			const n = 5
			f := newFixture(t, n)
			defer f.release()
			v := newVSP()
			s := configure(t, f.g, v, echo)
			var mine []*OutPacket // what the VSP brought back in the failed attempt
			calls, failing := 0, true
			must(t, s.SetSavePacketCallbacks(v.save, func(c *Channel, lib, dev []byte) error {
				calls++
				if failing {
					if err := tc.fail(calls); err != nil {
						return err
					}
				}
				if err := v.restore(c, lib, dev); err != nil {
					return err
				}
				if failing {
					c.sendMu.Lock()
					mine = append(mine, c.restoring.claimed[decodeLibSlot(t, lib)])
					c.sendMu.Unlock()
				}
				return nil
			}))
			before := observe(s)
			err := s.Restore(tc.state(f))
			if StatusOf(err) != StatusInvalidParameter || !strings.Contains(err.Error(), tc.cause) || !strings.Contains(err.Error(), "restore-packet callback") {
				t.Fatalf("restore: %v (status %v), want StatusInvalidParameter naming the callback and %q", err, StatusOf(err), tc.cause)
			}
			if tc.fail(3) != nil && !errors.Is(err, vspErr) {
				t.Fatalf("restore: %v does not wrap the VSP's error", err)
			}
			if after := observe(s); after.restored || after.state != before.state {
				t.Fatalf("a failed restore left the channel %+v, was %+v", after, before)
			}
			if len(mine) != 2 {
				t.Fatalf("the VSP brought back %d packets before the failure, want 2", len(mine))
			}
			failing = false
			// The same state again, the VSP's packets of the failed
			// attempt still allocated: they must not hold saved slots.
			must(t, s.Restore(f.state))
			for _, p := range mine {
				p.Free() // idle: Free panics on a packet in use
			}
			goLive(t, f, s, v, n)
		})
	}
}

// goLive enables and starts s, restored from f's state, lets f's client
// answer, and waits until v heard of all n transactions.
func goLive(t *testing.T, f *fixture, s *Channel, v *vsp, n int) {
	t.Helper()
	must(t, s.Enable())
	must(t, s.Start())
	f.release()
	eventually(t, "every transaction completes", func() bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		return len(v.results) == n
	})
}

// decodeLibSlot is the slot a packet's lib bytes name.
func decodeLibSlot(t *testing.T, lib []byte) uint32 {
	t.Helper()
	l, err := decodeLib(lib)
	must(t, err)
	return l.Slot
}

// TestRestoredConfigurationFixed: the setters refuse once a state is
// restored (it was checked against the configuration as it was): a
// smaller packet pool than the state's completions needed made Enable's
// re-attach index an empty pool, a panic on the channel's worker.
func TestRestoredConfigurationFixed(t *testing.T) {
	leakcheck.Check(t)
	f := newFixture(t, 3)
	defer f.release()
	v := newVSP()
	s := configure(t, f.g, v, echo)
	must(t, s.Restore(f.state))
	for name, set := range map[string]func() error{
		"SetMaxPacketCount": func() error { return s.SetMaxPacketCount(1) },
		"SetMaxPacketSize":  func() error { return s.SetMaxPacketSize(64) },
		"SetFriendlyName":   func() error { return s.SetFriendlyName("other") },
	} {
		if err := set(); StatusOf(err) != StatusInvalidDeviceState || !strings.Contains(err.Error(), "restored state") {
			t.Errorf("%s after a restore: %v, want StatusInvalidDeviceState", name, err)
		}
	}
	goLive(t, f, s, v, 3)
}

// TestEnableDropsHalfRestore: an Enable while RestoreFromBuffer wants more
// chunks is refused, names why, and drops that restore: the whole state
// then restores, not "sequence number 0, expected 2".
func TestEnableDropsHalfRestore(t *testing.T) {
	leakcheck.Check(t)
	f := newFixture(t, 3)
	defer f.release()
	v := newVSP()
	s := configure(t, f.g, v, echo)
	recs := recordSpans(t, f.state)
	if err := s.RestoreFromBuffer(bytes.Join(recs[:2], nil)); !errors.Is(err, StatusMoreProcessingRequired) {
		t.Fatalf("first two records: %v, want StatusMoreProcessingRequired", err)
	}
	if err := s.Enable(); StatusOf(err) != StatusInvalidDeviceState || !strings.Contains(err.Error(), "restore is incomplete") {
		t.Fatalf("Enable during a restore: %v, want StatusInvalidDeviceState naming the incomplete restore", err)
	}
	must(t, s.Restore(f.state))
	goLive(t, f, s, v, 3)
}

// TestSavePacketSecondCallFails: the save-packet callback's failure of its
// second call fails SaveBegin with StatusUnsuccessful naming the packet,
// not with the callback's STATUS_BUFFER_TOO_SMALL (which from a save means
// "a larger buffer"); a Go error of the VSP stays matchable.
func TestSavePacketSecondCallFails(t *testing.T) {
	leakcheck.Check(t)
	vspErr := errors.New("vsp: cannot save")
	for _, tc := range []struct {
		name   string
		second error
		is     error
	}{
		{"asks again", StatusBufferTooSmall, nil},
		{"vsp error", vspErr, vspErr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			s := r.newServer(t, echo, StateCallbacks{})
			must(t, s.SetSavePacketCallbacks(func(_ *OutPacket, buf []byte) (int, error) {
				if len(buf) == 0 {
					return 8, StatusBufferTooSmall
				}
				return 16, tc.second
			}, nil))
			c := pausedInFlight(t, r, s)
			err := s.SaveBegin()
			s.SaveEnd()
			if StatusOf(err) != StatusUnsuccessful || errors.Is(err, StatusBufferTooSmall) || !strings.Contains(err.Error(), "save-packet callback") {
				t.Fatalf("SaveBegin: %v (status %v), want StatusUnsuccessful naming the callback", err, StatusOf(err))
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("SaveBegin: %v does not wrap the VSP's error", err)
			}
			must(t, s.Start())
			must(t, c.Start())
		})
	}
}

// TestRestoreAfterCleanup names Cleanup, not a disabled channel.
func TestRestoreAfterCleanup(t *testing.T) {
	leakcheck.Check(t)
	f := newFixture(t, 1)
	defer f.release()
	s := configure(t, f.g, newVSP(), echo)
	must(t, s.Cleanup())
	if err := s.RestoreFromBuffer(f.state); StatusOf(err) != StatusInvalidDeviceState || !strings.Contains(err.Error(), "after Cleanup") {
		t.Fatalf("RestoreFromBuffer after Cleanup: %v", err)
	}
}

// FuzzRestoreApply restores states into a channel that a serviced host
// waits for, with a VSP whose restore-packet callback checks its bytes
// (FuzzRestoreFromBuffer's channel, which no restored guest waits for,
// never gets that far: its states fail the host's check before apply).
// The input replaces the body of one record of a good state, re-framed
// with valid checksums, so that the records' own checks and apply are
// what it reaches. Whatever the state, a refused one leaves the channel
// so that the good state then restores, the VSP's packets of the failed
// attempt still allocated.
func FuzzRestoreApply(f *testing.F) {
	fx := newFixture(f, 5)
	f.Cleanup(fx.release)
	b, recs, err := savedstate.Parse(fx.state, savedstate.Limits{})
	must(f, err)
	for i, r := range recs {
		f.Add(uint8(i), r.Body)
		if r.Kind == KindChannelPacket {
			// VSP bytes one short, which the VSP refuses: the packets
			// before this one are restored when it fails.
			f.Add(uint8(i), shortVSPBody(f, r.Body))
		}
	}
	f.Fuzz(func(t *testing.T, k uint8, body []byte) {
		rs := append([]savedstate.Record(nil), recs...)
		rs[int(k)%len(rs)].Body = body
		sv, err := savedstate.NewSaver(b.Scope, b.Identity, rs)
		if err != nil {
			return
		}
		s := configure(t, fx.g, newVSP(), echo)
		defer s.Cleanup() //nolint:errcheck // the host's restored channel waits for the next
		if s.Restore(sv.Bytes()) == nil {
			return
		}
		if err := s.Restore(fx.state); err != nil {
			t.Fatalf("the good state after a refused one: %v", err)
		}
	})
}

// TestCleanupRestoredNotEnabled: Cleanup of a channel restored and never
// enabled completes every restored transaction (StatusDeviceRemoved);
// they were left waiting for ever.
func TestCleanupRestoredNotEnabled(t *testing.T) {
	leakcheck.Check(t)
	const n = 4
	f := newFixture(t, n)
	defer f.release()
	v := newVSP()
	s := configure(t, f.g, v, echo)
	must(t, s.Restore(f.state))
	must(t, s.Cleanup())
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.results) != n {
		t.Fatalf("%d of %d restored transactions completed", len(v.results), n)
	}
	for seq, st := range v.results {
		if st != StatusDeviceRemoved {
			t.Fatalf("transaction %d: %v, want StatusDeviceRemoved", seq, st)
		}
	}
}

// TestAllocateAfterCleanup: a packet of a channel after Cleanup is
// refused; it was handed out, for a channel that cannot be used.
func TestAllocateAfterCleanup(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	s := r.newServer(t, echo, StateCallbacks{})
	must(t, s.Cleanup())
	if p, err := s.AllocatePacket(); StatusOf(err) != StatusInvalidDeviceState || p != nil {
		t.Fatalf("AllocatePacket after Cleanup: %v, %v; want StatusInvalidDeviceState", p, err)
	}
	if err := s.WaitSendSpace(context.Background(), -1); StatusOf(err) != StatusInvalidBufferSize || !strings.Contains(err.Error(), "-1 bytes") {
		t.Fatalf("WaitSendSpace(-1): %v", err)
	}
}
