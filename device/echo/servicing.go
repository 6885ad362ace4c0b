package echo

import (
	"fmt"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/host"
)

// SaveChunkSize is the buffer Save hands SaveContinue: each chunk it
// returns holds whole records of the channel's state and fits in it
// (unless a single record is larger).
const SaveChunkSize = 256 << 10

// Pause stops the server's packets and returns once every packet
// indicated so far was answered, without waiting for the guest: an answer
// still waiting for room in the guest's ring stays in the channel's send
// queue, which a save carries (as a queued packet) and the successor
// sends, and the packet it answers is completed at once (suspend). So the
// VSP holds nothing of its own that a save would have to carry, and a
// guest that is slow to read does not hold up a servicing. Start resumes.
func (s *Server) Pause() error { return s.ch.Pause() }

// StopIndications is the first half of Pause (channel.StopIndications):
// it stops the server's packets at once without waiting. Pause (or Start)
// must follow; a host pausing many servers stops them all first, so that
// no server goes on echoing while the others pause.
func (s *Server) StopIndications() { s.ch.Servicing().StopIndications() }

// maxAnswerFactor bounds the answer packets of a server, as a multiple of
// its packet count: suspend raises the limit by one for each answer it
// lets go of.
const maxAnswerFactor = 2

// suspend is the channel's Suspend callback, on its worker while the
// receive goroutine is parked: every incoming packet whose answer waits in
// the send queue is completed now rather than once the guest made room,
// so Pause (and a servicing) does not wait for the guest. An answer keeps
// its slot until it is in the ring, so the pool's limit grows by one for
// each packet let go of: an incoming packet object always finds a free
// answer (process adds answers up to the limit). Past maxAnswerFactor
// times the packet count it lets go of nothing more, and Pause waits as
// before.
func (s *Server) suspend(c *channel.Channel) {
	// Answers staged by a batch the pause stopped: into the send queue,
	// before the walk, which leaves them be (no packet waits for them).
	s.flushInBand()
	s.flushBurst()
	// a.in was set before the send queued op; the completion routine
	// reads it only after op left the queue, under the lock this walk
	// holds, so it sees nil once the walk took the packet.
	var detached []*channel.Packet
	room := maxAnswerFactor*s.count - s.limit
	c.Servicing().QueuedPackets(func(op *channel.OutPacket) {
		if a, ok := op.Context.(*outSlot); ok && a.in != nil && len(detached) < room {
			detached = append(detached, a.in)
			a.in = nil
		}
	})
	s.limit += len(detached)
	for _, p := range detached {
		p.Complete(nil)
	}
}

// Start lets packets flow again after Pause (a servicing that failed
// before the exec resumes the old server this way).
func (s *Server) Start() error { return s.ch.Start() }

// StartHeld starts a restored server without letting its packets flow
// (channel.Channel.StartHeld); Release lets them. A host restoring many
// servers starts each held and then releases them all at once.
func (s *Server) StartHeld() error { return s.ch.Servicing().StartHeld() }

// Release lets the packets of a server started held flow.
func (s *Server) Release() { s.ch.Servicing().Release() }

// Save saves the paused server's channel for a successor: the state in
// whole-record chunks, as RestoreServer takes them. Pause first (and, when
// servicing the host, save its bus: host.Host.SaveGuests).
func (s *Server) Save() ([][]byte, error) { return s.ch.SaveChunks(SaveChunkSize) }

// RestoreServer continues, on a guest restored by host.Restore, the echo
// server a predecessor saved with Save: the same cfg, the saved chunks in
// order. The channel re-attaches to the channel the guest still has, its
// queued and in-flight packets come back, and packets flow again. On error
// nothing is left running.
func RestoreServer(g *host.Guest, cfg ServerConfig, chunks [][]byte) (*Server, error) {
	return newServer(g, cfg, chunks, true, true)
}

// RestorePausedServer is RestoreServer, except that packets do not flow
// until Start: a host restoring many channels starts them all once every
// one is restored, so the first ones' traffic does not slow the rest.
// Close it if it is never started.
func RestorePausedServer(g *host.Guest, cfg ServerConfig, chunks [][]byte) (*Server, error) {
	return newServer(g, cfg, chunks, true, false)
}

// restorePacket brings back an answer that was queued at the save (Pause
// lets go of answers the guest had no room for): a busy slot of the
// answer ring that answers nothing and goes idle once it is sent. The
// pool's limit is the packet count beside the restored answers, so every
// incoming packet object finds a free answer.
func (s *Server) restorePacket(c *channel.Channel, lib, dev []byte) error {
	if len(dev) != 0 {
		return fmt.Errorf("echo: restore: %d bytes of VSP state for a packet, want none", len(dev))
	}
	op, err := c.AllocatePacket()
	if err != nil {
		return err
	}
	if err := op.Restore(lib); err != nil {
		op.Free()
		return err
	}
	op.SetCompletion(s.answered)
	a := newOutSlot(op)
	a.sent = 1
	s.answers.insert(a)
	return nil
}
