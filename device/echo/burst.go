package echo

import "github.com/govmbus/govmbus/channel"

// Small in-band answers go out in bursts: copied out of the guest's ring
// as their packets come, and written with one TrySendBatch when the
// receive batch ends (or the burst fills). Between two processes every
// lock taken after a write into the shared ring waits for the write to
// leave the core; a TrySend per answer waited once an answer, a burst
// waits once.
const (
	// burstMax is the longest answer sent in a burst; a longer one is
	// sent at once, after the burst, where copying it would cost more
	// than the wait it saves.
	burstMax = 1024
	// burstLen is the most answers in a burst.
	burstLen = 64
	// burstMin is the first buffer of a burst's bytes, which doubles,
	// up to burstLen*burstMax, as bursts fill it. The burst is made on
	// first use, and small: not in a servicing's blackout for every
	// server restored.
	burstMin = 4 << 10
)

// burst is the answers waiting for the batch's end, with the packets
// they answer, which are completed once their answer is in the ring (or
// in an answer packet): the guest's packets hold the server back as
// before. Owned by the receive goroutine; the suspend callback, which
// runs once that goroutine has parked, sends what a pause left.
type burst struct {
	buf  []byte
	data [burstLen][]byte
	pk   [burstLen]*channel.Packet
	n    int
}

// burstAnswer adds p's answer to the burst, sending the burst first if it
// is full: at most half the server's packets wait in it, so the channel
// always has packets to read into until the batch ends.
func (s *Server) burstAnswer(p *channel.Packet, payload []byte) {
	b := s.burst
	if b == nil {
		b = new(burst)
		s.burst = b
	}
	full := len(b.buf)+len(payload) > cap(b.buf)
	if b.n == min(burstLen, s.count/2) || full {
		grow := full && (b.n > 0 || cap(b.buf) < len(payload))
		s.flushBurst()
		if grow {
			b.buf = make([]byte, 0, min(burstLen*burstMax, max(2*cap(b.buf), burstMin)))
		}
	}
	off := len(b.buf)
	b.buf = append(b.buf, payload...)
	b.data[b.n], b.pk[b.n] = b.buf[off:len(b.buf):len(b.buf)], p
	b.n++
}

// flushBurst writes the burst's answers into the guest's ring in one
// TrySendBatch and completes their packets in one CompletePackets; the
// answers that do not fit go into answer packets, queued in order behind
// them.
func (s *Server) flushBurst() {
	b := s.burst
	if b == nil || b.n == 0 {
		return
	}
	n, _ := s.ch.TrySendBatch(b.data[:b.n])
	s.ch.CompletePackets(b.pk[:n])
	for i := n; i < b.n; i++ {
		s.answerLater(b.pk[i], b.data[i])
	}
	clear(b.data[:b.n])
	clear(b.pk[:b.n])
	b.n, b.buf = 0, b.buf[:0]
}
