package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/internal/sockpath"
)

// Bounds of the admin API.
const (
	// MaxPending bounds the admin requests served at once; the ones
	// beyond are answered 503 at once. Each may wait for a guest (one
	// request per IC channel is on the wire; ic.MaxPending wait behind
	// it).
	MaxPending = 32
	// DefaultWait is how long a request waits for the guest's answer
	// unless it asks otherwise (?wait=).
	DefaultWait = 30 * time.Second
	// MaxWait bounds what ?wait= may ask.
	MaxWait = 5 * time.Minute
	// maxBody bounds a request's body (a KVP value is at most 2048
	// bytes of UTF-16; a shutdown message 2048).
	maxBody = 64 << 10
)

// Source is what the API serves: a hosting.Daemon.
type Source interface {
	Devices() []hosting.DeviceInfo
}

// Subscriber is a Source whose events a Server takes (Observe) from
// Listen until Close: a hosting.Daemon.
type Subscriber interface {
	Subscribe(func(hosting.Event)) (cancel func())
}

var _ Subscriber = (*hosting.Daemon)(nil)

// Config configures a Server.
type Config struct {
	Path string // the socket's path
	// Successor says that a socket at Path is a predecessor's (this is
	// a servicing's successor), to be replaced even though it answers.
	// Otherwise only a socket nobody listens on is replaced, and
	// nothing else.
	Successor bool
	Source    Source
	Logger    *slog.Logger // nil discards
	// Servicings, if set, reports the host's servicings and its last
	// blackout for GET /v1/host (metrics.Metrics.Servicings).
	Servicings func() (uint32, time.Duration)
}

// Server is a running admin API.
type Server struct {
	cfg  Config
	log  *slog.Logger
	uid  int // the uid a peer must have: this process's
	l    *net.UnixListener
	srv  *http.Server
	slot chan struct{}
	st   os.FileInfo // the socket file Listen made, to remove only it
	done chan struct{}
	once sync.Once
	err  error
	// ctx is every request's base: Close cancels it, then waits for
	// the handlers (reqs), so that none outlives the server.
	ctx    context.Context
	cancel context.CancelFunc
	reqs   sync.WaitGroup

	// A servicing's pause (Observe), guarded by mu: while paused every
	// request is answered 503 with Retry; epoch, every request's other
	// parent, is cancelled (cause errServicing) as one begins, and the
	// servicing waits until the requests running then (running) have
	// answered (drained is closed), for drainWait at most.
	unsubscribe func() // the Source's Subscribe's, nil without
	mu          sync.Mutex
	paused      bool
	running     int
	drained     chan struct{}
	epoch       context.Context
	endEpoch    context.CancelCauseFunc
}

// errServicing is the cause of a request's cancellation by a servicing.
var errServicing = errors.New("the host began a servicing")

// drainWait bounds how long a servicing's start waits for the admin
// requests it cancelled to answer. A variable for tests.
var drainWait = time.Second

type credKey struct{}

// Listen creates the socket at cfg.Path with mode 0600 and serves until
// Close. Unless cfg.Successor (which replaces what is there, its
// predecessor's socket) it refuses a path that is not a socket and one
// where a process listens; a socket nobody listens on (its host died) is
// replaced.
func Listen(cfg Config) (*Server, error) {
	if cfg.Path == "" || cfg.Source == nil {
		return nil, errors.New("admin: no path or no source")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, uid: os.Getuid(), slot: make(chan struct{}, MaxPending), done: make(chan struct{})}
	s.epoch, s.endEpoch = context.WithCancelCause(context.Background())
	if err := s.listen(); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if src, ok := cfg.Source.(Subscriber); ok {
		s.unsubscribe = src.Subscribe(s.Observe)
	}
	s.srv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, credKey{}, peerUID(c))
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(s.l); !errors.Is(err, http.ErrServerClosed) {
			s.err = err
		}
	}()
	return s, nil
}

// listen binds a socket under a temporary name, makes it 0600, and
// renames it to the path: the path is never a socket of a wider mode,
// and a successor's listen replaces its predecessor's file at once.
func (s *Server) listen() error {
	if !s.cfg.Successor {
		if err := sockpath.Claim(s.cfg.Path, "unix"); err != nil {
			return fmt.Errorf("admin: %w", err)
		}
	}
	dir, base := filepath.Split(s.cfg.Path)
	tmp := filepath.Join(dir, fmt.Sprintf(".%s.%d", base, os.Getpid()))
	os.Remove(tmp) //nolint:errcheck // a leftover of this pid's predecessor image
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	l.SetUnlinkOnClose(false) // Close removes the path itself, if still ours
	err = os.Chmod(tmp, 0o600)
	if err == nil {
		err = os.Rename(tmp, s.cfg.Path)
	}
	if err == nil {
		s.st, err = os.Lstat(s.cfg.Path)
	}
	if err != nil {
		l.Close()
		os.Remove(tmp) //nolint:errcheck // the error is the one to report
		return fmt.Errorf("admin: %w", err)
	}
	s.l = l
	return nil
}

// peerUID is the uid of c's peer by SO_PEERCRED, -1 if unknown.
func peerUID(c net.Conn) int {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return -1
	}
	uid := -1
	rc.Control(func(fd uintptr) { //nolint:errcheck // uid stays -1
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			uid = int(cred.Uid)
		}
	})
	return uid
}

// guard refuses a peer of another uid and a request beyond MaxPending.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if uid, _ := r.Context().Value(credKey{}).(int); uid != s.uid {
			s.log.Warn("admin request refused", "peer_uid", uid)
			writeError(w, http.StatusForbidden, fmt.Errorf("uid %d may not use this socket", uid))
			return
		}
		select {
		case s.slot <- struct{}{}:
			s.reqs.Add(1)
			defer func() { <-s.slot; s.reqs.Done() }()
		default:
			writeError(w, http.StatusServiceUnavailable, fmt.Errorf("more than %d admin requests at once", MaxPending))
			return
		}
		epoch, ok := s.enter()
		if !ok {
			writeRetry(w, errors.New("the host is being serviced: try again"), true)
			return
		}
		defer s.leave()
		ctx, cancel := context.WithCancelCause(r.Context())
		defer cancel(nil)
		defer context.AfterFunc(epoch, func() { cancel(context.Cause(epoch)) })()
		r = r.WithContext(ctx)
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		next.ServeHTTP(w, r)
		// The whole answer goes to the socket before the request counts
		// as answered (leave): a servicing's exec right after must not
		// take it along.
		http.NewResponseController(w).Flush() //nolint:errcheck // the peer may be gone
	})
}

// enter counts a request in, with the epoch it runs in; false while a
// servicing runs.
func (s *Server) enter() (context.Context, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused {
		return nil, false
	}
	s.running++
	return s.epoch, true
}

// leave counts an answered request out.
func (s *Server) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running--; s.running == 0 && s.drained != nil {
		close(s.drained)
		s.drained = nil
	}
}

// Observe takes the daemon's events: Listen subscribes it to a Source that
// is a Subscriber (a hosting.Daemon); the owner of another Source calls
// it, on the goroutine of the servicing. A servicing's start pauses the
// API until the servicing fails or completes in this process: requests then are answered 503 with Retry
// (Client sends them again), and those running are cancelled and answer
// before Observe returns, so that no request is carried out and left
// unanswered by a handover. A request that waited for its guest answers
// 503, with Retry if sending it again does no harm.
func (s *Server) Observe(e hosting.Event) {
	switch e := e.(type) {
	case *hosting.ServicingStarted:
		s.pause()
	case *hosting.ServicingFailed:
		if !e.Restoring {
			s.resume()
		}
	case *hosting.ServicingComplete:
		s.resume()
	}
}

// pause is a servicing's start: see Observe.
func (s *Server) pause() {
	s.mu.Lock()
	if s.paused {
		s.mu.Unlock()
		return
	}
	s.paused = true
	s.endEpoch(errServicing)
	var drained chan struct{}
	if s.running > 0 {
		s.drained = make(chan struct{})
		drained = s.drained
	}
	n := s.running
	s.mu.Unlock()
	if drained == nil {
		return
	}
	t := time.NewTimer(drainWait)
	defer t.Stop()
	select {
	case <-drained:
	case <-t.C:
		s.log.Warn("admin requests still running as a servicing goes on", "requests", n, "waited", drainWait)
	}
}

// resume ends a pause: the servicing failed, or completed in this
// process.
func (s *Server) resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.paused {
		return
	}
	s.paused = false
	s.drained = nil
	s.epoch, s.endEpoch = context.WithCancelCause(context.Background())
}

// Close stops serving: requests in progress end (their waits are
// cancelled) and the socket's path is removed if it is still this
// server's (a successor may have replaced it).
func (s *Server) Close() error {
	s.once.Do(func() {
		if s.unsubscribe != nil {
			s.unsubscribe()
		}
		if st, err := os.Lstat(s.cfg.Path); err == nil && os.SameFile(st, s.st) {
			os.Remove(s.cfg.Path) //nolint:errcheck // best effort
		}
		s.cancel()
		s.srv.Close() //nolint:errcheck // the listener's error is of no use
		<-s.done
		s.reqs.Wait()
	})
	return s.err
}
