package blk

import (
	"github.com/govmbus/govmbus/host"
)

// SaveChunkSize is the buffer Save hands SaveContinue: each chunk it
// returns holds whole records of the channel's state and fits in it
// (unless a single record is larger).
const SaveChunkSize = 256 << 10

// Pause stops the server's requests and waits until every request
// indicated so far was carried out and completed, but a FLUSH still
// waiting for its fsync: the blk VSP keeps no state of its own between
// requests (each is served whole on the channel's worker, its response
// queued as the packet's completion), and a FLUSH is restartable
// (channel.Packet.SetRestartable), saved as still to do and flushed again
// by the successor. So after Pause everything a successor needs is in the
// channel's state and the backend. No fsync starts while the server is
// paused (an fsync under way when a servicing execs would hold up the
// exec). On a channel set to SetPauseWaitsForRestartable (a servicing
// into a release that cannot redo a FLUSH), Pause instead waits for the
// FLUSHes too, and their fsyncs run. Start resumes.
func (s *Server) Pause() error {
	s.holdFlushes()
	return s.ch.Pause()
}

// StopIndications is the first half of Pause (channel.StopIndications):
// it stops the server's packets at once without waiting. Pause (or Start)
// must follow; a host pausing many servers stops them all first.
func (s *Server) StopIndications() {
	s.holdFlushes()
	s.ch.Servicing().StopIndications()
}

// Start lets requests flow again after Pause (a servicing that failed
// before the exec resumes the old server this way).
func (s *Server) Start() error {
	err := s.ch.Start()
	s.resumeFlushes()
	return err
}

// StartHeld starts a restored server without letting its requests flow
// (channel.Channel.StartHeld); Release lets them. A host restoring many
// servers starts each held and then releases them all at once.
func (s *Server) StartHeld() error {
	err := s.ch.Servicing().StartHeld()
	s.resumeFlushes()
	return err
}

// Release lets the requests of a server started held flow.
func (s *Server) Release() { s.ch.Servicing().Release() }

// Save saves the paused server's channel for a successor: the state in
// whole-record chunks, as RestoreServer takes them. Pause first (and, when
// servicing the host, save its bus: host.Host.SaveGuests). The backend is
// not saved: the successor opens it again.
func (s *Server) Save() ([][]byte, error) { return s.ch.SaveChunks(SaveChunkSize) }

// RestoreServer continues, on a guest restored by host.Restore, the blk
// server a predecessor saved with Save: the same backend contents and
// cfg, the saved chunks in order. The channel re-attaches to the channel
// the guest still has, responses queued at the save are sent, and
// requests flow again. On error nothing is left running; be stays the
// caller's.
func RestoreServer(g *host.Guest, be Backend, cfg ServerConfig, chunks [][]byte) (*Server, error) {
	return newServer(g, be, cfg, chunks, true, true)
}

// RestorePausedServer is RestoreServer, except that packets do not flow
// until Start: a host restoring many channels starts them all once every
// one is restored, so the first ones' traffic does not slow the rest.
// Close it if it is never started.
func RestorePausedServer(g *host.Guest, be Backend, cfg ServerConfig, chunks [][]byte) (*Server, error) {
	return newServer(g, be, cfg, chunks, true, false)
}
