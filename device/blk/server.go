package blk

import (
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/protocol"
)

// Backend is what a Server serves: a file, or anything that reads, writes
// and syncs like one. It must be safe for concurrent use (an *os.File is):
// one Backend may serve several guests.
type Backend interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
}

// ServerConfig configures a Server.
type ServerConfig struct {
	Instance    protocol.GUID // zero: InterfaceInstance
	Size        int64         // disk bytes; the backend must hold them
	ReadOnly    bool          // WRITE answers StatusReadOnly
	MaxTransfer uint32        // zero: DefaultMaxTransfer; at most 1 MiB
	Logger      *slog.Logger  // nil discards
}

// Server is the blk VSP for one guest: a started server channel.
type Server struct {
	ch  *channel.Channel
	be  Backend
	cfg ServerConfig
	// flushes feeds the flusher goroutine, which Close ends (flushed
	// closes then); it holds every packet the channel may have
	// outstanding, so a send never blocks the worker.
	flushes   chan *channel.Packet
	flushed   chan struct{}
	closeOnce sync.Once
	// hold parks the flusher before its next fsync while the server is
	// paused (StopIndications or Pause until Start or Close): the FLUSHes
	// it has are saved as still to do, and an fsync begun after the pause
	// would only delay a servicing's exec, which waits for every thread
	// of the process to leave its system call. kick wakes it.
	hold atomic.Bool
	kick chan struct{}
	// resp is process's response buffer: process runs on the channel's
	// one worker goroutine, and Complete copies the bytes, so one buffer
	// serves every request without an allocation each.
	resp [ResponseSize]byte
}

// maxPackets is the requests a server's channel may have outstanding.
const maxPackets = 64

// NewServer offers a blk channel serving be to guest g and starts it.
// Close rescinds it; be stays the caller's.
func NewServer(g *host.Guest, be Backend, cfg ServerConfig) (*Server, error) {
	return newServer(g, be, cfg, nil, false, true)
}

// newServer builds a server; with restore it restores the channel from
// chunks before enabling it, which re-attaches it instead of offering it.
// discardLogger is the Logger of a server configured without one: one for
// all, not one per server (a servicing successor makes every server in its
// blackout).
var discardLogger = slog.New(slog.DiscardHandler)

func newServer(g *host.Guest, be Backend, cfg ServerConfig, chunks [][]byte, restore bool, start bool) (*Server, error) {
	if cfg.Instance.IsZero() {
		cfg.Instance = InterfaceInstance
	}
	if cfg.MaxTransfer == 0 {
		cfg.MaxTransfer = DefaultMaxTransfer
	}
	if cfg.MaxTransfer > 1<<20 || cfg.Size < 0 {
		return nil, errors.New("blk: max transfer above 1 MiB or negative size")
	}
	if cfg.Logger == nil {
		cfg.Logger = discardLogger
	}
	s := &Server{ch: channel.NewServer(), be: be, cfg: cfg, flushes: make(chan *channel.Packet, maxPackets), flushed: make(chan struct{}), kick: make(chan struct{}, 1)}
	err := firstErr(
		s.ch.SetGuest(g),
		s.ch.SetInterface(InterfaceType, cfg.Instance),
		s.ch.SetFriendlyName("blk"),
		// Requests longer than RequestSize are answered StatusBadRequest
		// up to this size; a longer packet is malformed to the channel
		// layer, which stops the channel (docs/BLK.md).
		s.ch.SetMaxPacketSize(MaxPacket),
		s.ch.SetMaxPacketCount(maxPackets),
		// A transfer's pages: one more than its length needs, for a
		// buffer that starts inside a page.
		s.ch.SetMaxExternalData(int(cfg.MaxTransfer), int(cfg.MaxTransfer)/pageSize+1),
		// File I/O blocks: requests run on the channel's worker.
		s.ch.SetBlockingProcessing(true),
		s.ch.SetProcessPacketCallbacks(s.process, nil),
	)
	if err == nil && restore {
		err = s.ch.RestoreChunks(chunks)
	}
	if err == nil {
		err = s.ch.Enable()
	}
	if err == nil && start {
		err = s.ch.Start()
	}
	if err != nil {
		s.ch.Cleanup() //nolint:errcheck // the first error matters
		return nil, err
	}
	go s.flusher()
	return s, nil
}

// Channel is the server channel, for state queries.
func (s *Server) Channel() *channel.Channel { return s.ch }

// Close rescinds the channel and waits until it is torn down, flushes in
// progress included. It is idempotent.
func (s *Server) Close() error {
	s.resumeFlushes()     // Cleanup waits for the flushes the flusher holds
	err := s.ch.Cleanup() // waits for every request, flushes too
	s.closeOnce.Do(func() { close(s.flushes) })
	<-s.flushed
	return err
}

// process serves one request on the channel's worker goroutine. Every
// request is completed, with an error status if it is bad. A FLUSH goes
// to the flusher instead, marked restartable: its fsync may take as long
// as the disk likes, and neither the requests behind it nor a pause for
// servicing need to wait for it (a successor flushes again).
func (s *Server) process(_ *channel.Channel, p *channel.Packet, payload []byte, flags channel.PacketFlags) {
	external := flags&channel.PacketFlagExternalData != 0
	req, st := ParseRequest(payload)
	resp := Response{Status: st}
	if st == StatusOK {
		if req.Op == OpFlush && !external && req.Offset == 0 && req.Length == 0 && p.SetRestartable() == nil {
			// SetRestartable cannot fail here: no external data.
			s.flushes <- p // room for every outstanding packet: never blocks
			return
		}
		resp = s.serve(p, req, external)
	}
	resp.Marshal(s.resp[:])
	p.Complete(s.resp[:])
}

// flusher carries out FLUSH requests until Close. The requests that come
// while one fsync runs share the next: each was received before that
// fsync started, so it covers every WRITE completed before the request.
func (s *Server) flusher() {
	defer close(s.flushed)
	batch := make([]*channel.Packet, 0, maxPackets)
	for p := range s.flushes {
		batch = append(batch[:0], p)
	more:
		for {
			select {
			case q, ok := <-s.flushes:
				if !ok {
					break more
				}
				batch = append(batch, q)
			default:
				break more
			}
		}
		for s.hold.Load() {
			<-s.kick
		}
		var out [ResponseSize]byte
		s.sync().Marshal(out[:])
		for _, q := range batch {
			q.Complete(out[:])
		}
		clear(batch)
	}
}

// holdFlushes parks the flusher before its next fsync; resumeFlushes lets
// it go on. Not on a channel whose Pause waits for restartable packets
// (channel.ServicingView.SetPauseWaitsForRestartable): that Pause waits for
// the flushes the flusher has, which a parked flusher would never answer.
func (s *Server) holdFlushes() {
	if !s.ch.Servicing().PauseWaitsForRestartable() {
		s.hold.Store(true)
	}
}

func (s *Server) resumeFlushes() {
	s.hold.Store(false)
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// sync makes the backend durable: a FLUSH's response.
func (s *Server) sync() Response {
	if err := s.be.Sync(); err != nil {
		s.cfg.Logger.Warn("blk flush", "err", err)
		return Response{Status: StatusIOError}
	}
	return Response{}
}

// serve checks and carries out one parsed request.
func (s *Server) serve(p *channel.Packet, req Request, external bool) Response {
	switch req.Op {
	case OpIdentify, OpFlush:
		if external || req.Offset != 0 || req.Length != 0 {
			return Response{Status: StatusBadRequest}
		}
		if req.Op == OpFlush { // process hands valid ones to the flusher
			return s.sync()
		}
		var fl uint32
		if s.cfg.ReadOnly {
			fl |= FlagReadOnly
		}
		return Response{BlockSize: BlockSize, Size: uint64(s.cfg.Size), Flags: fl, Value: s.cfg.MaxTransfer}
	}
	// READ or WRITE.
	if !external || req.Length == 0 {
		return Response{Status: StatusBadRequest}
	}
	if req.Length > s.cfg.MaxTransfer {
		return Response{Status: StatusTooLarge}
	}
	if req.Offset > uint64(s.cfg.Size) || uint64(req.Length) > uint64(s.cfg.Size)-req.Offset {
		return Response{Status: StatusOutOfRange}
	}
	if req.Op == OpWrite && s.cfg.ReadOnly {
		return Response{Status: StatusReadOnly}
	}
	access := channel.AccessReadWrite // READ writes guest memory
	if req.Op == OpWrite {
		access = channel.AccessReadOnly
	}
	v, err := p.ExternalData(access)
	if err != nil || v.Len() != int64(req.Length) {
		return Response{Status: StatusBadRequest}
	}
	off := int64(req.Offset)
	if req.Op == OpRead {
		err = v.WriteSegments(func(seg []byte) error {
			n, err := s.be.ReadAt(seg, off)
			off += int64(n)
			if n == len(seg) {
				return nil // io.EOF with a full read is fine
			}
			if err == nil {
				err = io.ErrUnexpectedEOF // the file shrank under us
			}
			return err
		})
	} else {
		err = v.ReadSegments(func(seg []byte) error {
			n, err := s.be.WriteAt(seg, off)
			off += int64(n)
			return err
		})
	}
	if err != nil {
		s.cfg.Logger.Warn("blk I/O", "op", req.Op, "offset", req.Offset, "length", req.Length, "err", err)
		return Response{Status: StatusIOError}
	}
	return Response{Value: req.Length}
}
