package blk

import (
	"errors"
	"fmt"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/host"
)

// SaveChunkSize is the buffer Save hands SaveContinue: each chunk it
// returns holds whole records of the channel's state and fits in it
// (unless a single record is larger).
const SaveChunkSize = 256 << 10

// Pause stops the server's requests and waits until every request
// indicated so far was carried out and completed: the blk VSP keeps no
// state of its own between requests (each is served whole on the
// channel's worker, its response queued as the packet's completion), so
// after Pause everything a successor needs is in the channel's state and
// the backend. Start resumes.
func (s *Server) Pause() error { return s.ch.Pause() }

// Start lets requests flow again after Pause (a servicing that failed
// before the exec resumes the old server this way).
func (s *Server) Start() error { return s.ch.Start() }

// Save saves the paused server's channel for a successor: the state in
// whole-record chunks, as RestoreServer takes them. Pause first (and, when
// servicing the host, save its bus: host.Host.SaveGuests). The backend is
// not saved: the successor opens it again.
func (s *Server) Save() ([][]byte, error) {
	if err := s.ch.SaveBegin(); err != nil {
		return nil, err
	}
	defer s.ch.SaveEnd()
	var out [][]byte
	buf := make([]byte, SaveChunkSize)
	// Every call writes at least one record or asks for a larger buffer
	// once; a state holds a bounded number of records, so this ends.
	for {
		n, req, err := s.ch.SaveContinue(buf)
		if n > 0 {
			out = append(out, append([]byte(nil), buf[:n]...))
		}
		switch {
		case err == nil:
			return out, nil
		case errors.Is(err, channel.StatusBufferTooSmall):
			if req <= len(buf) {
				return nil, fmt.Errorf("blk: save: buffer of %d bytes too small, %d required", len(buf), req)
			}
			buf = make([]byte, req)
		case !errors.Is(err, channel.StatusBufferOverflow):
			return nil, err
		}
	}
}

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

// restoreChunks feeds a disabled channel its saved chunks.
func restoreChunks(ch *channel.Channel, chunks [][]byte) error {
	if len(chunks) == 0 {
		return errors.New("blk: restore: no saved state")
	}
	for i, c := range chunks {
		err := ch.RestoreFromBuffer(c)
		last := i == len(chunks)-1
		switch {
		case !last && errors.Is(err, channel.StatusMoreProcessingRequired):
		case last && err == nil:
		case err == nil:
			return fmt.Errorf("blk: restore: state complete at chunk %d of %d", i+1, len(chunks))
		case last && errors.Is(err, channel.StatusMoreProcessingRequired):
			return errors.New("blk: restore: saved state ends before its End record")
		default:
			return fmt.Errorf("blk: restore: chunk %d: %w", i+1, err)
		}
	}
	return nil
}
