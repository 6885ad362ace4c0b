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

// Pause stops the server's packets and waits until every packet indicated
// so far was answered: an answer is in the ring (or the packet was
// completed) before Pause returns, so the VSP holds nothing of its own
// that a save would have to carry. Start resumes.
func (s *Server) Pause() error { return s.ch.Pause() }

// Start lets packets flow again after Pause (a servicing that failed
// before the exec resumes the old server this way).
func (s *Server) Start() error { return s.ch.Start() }

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

// restorePacket brings back an answer that was queued or in the ring at
// the save. Pause waits for answers to reach the ring, so there are none
// in practice; one that does come back is a busy slot of the answer ring
// that answers nothing and goes idle once it is sent.
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
