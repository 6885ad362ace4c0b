package hostchaos

import (
	"context"
	"time"

	"github.com/govmbus/govmbus/transport"
)

// Signals pass through the relay: the real host is handed the relay's
// own events, and a pump per channel and direction waits on one event
// and signals the other. That is where a hostile host loses or delays
// the signals of a channel: the guest's requests (it "never answers") or
// its own answers (the guest is never woken).

// pump passes the signals of src on to dst until the session ends. If
// the session armed drop, the pump stops passing them after a number of
// signals drawn now (the channel works for a while, then that side goes
// silent for good); if it armed delay, it holds some signals back for a
// while.
func (s *session) pump(ctx context.Context, src, dst *transport.Event, drop, delay string) {
	rng := s.pumpRng()
	dropAfter := -1
	if s.armed[drop] {
		dropAfter = rng.IntN(8)
	}
	for n := 0; ; n++ {
		if src.Wait(ctx) != nil {
			return
		}
		switch {
		case n == dropAfter:
			s.did(drop)
			fallthrough
		case dropAfter >= 0 && n > dropAfter:
			continue
		case s.armed[delay] && rng.IntN(4) == 0:
			s.did(delay)
			if !s.sleep(time.Duration(rng.Int64N(int64(maxDelay)))) {
				return
			}
		}
		if dst.Signal() != nil {
			return
		}
	}
}

// relayEvents puts the relay between the guest's events of channel id
// and the real host: it hands the host events of its own and starts the
// pumps. toHost and toGuest are the guest's; it returns false if the
// session ended.
func (s *session) relayEvents(id uint32, toHost, toGuest *transport.Event) bool {
	for _, p := range []struct {
		dir          transport.Direction
		guest        *transport.Event
		drop, delay  string
		fromGuestEnd bool
	}{
		{transport.ToHost, toHost, kSignalToHostDropped, kSignalToHostDelayed, true},
		{transport.ToGuest, toGuest, kSignalToGuestDropped, kSignalToGuestDelayed, false},
	} {
		if p.guest == nil {
			continue
		}
		mine, err := transport.NewEvent()
		if err != nil {
			s.finish(endChaos + " (" + err.Error() + ")")
			return false
		}
		s.mu.Lock()
		s.events = append(s.events, mine)
		s.mu.Unlock()
		if err := s.host.SendEvent(id, p.dir, mine); err != nil {
			s.finish(s.endOf(err, endHost))
			return false
		}
		src, dst := mine, p.guest
		if p.fromGuestEnd {
			src, dst = p.guest, mine
		}
		s.pumps.Add(1)
		go func() {
			defer s.pumps.Done()
			s.pump(s.pumpCtx, src, dst, p.drop, p.delay)
		}()
	}
	return true
}
