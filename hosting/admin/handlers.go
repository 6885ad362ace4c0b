package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/govmbus/govmbus/capture"
	"github.com/govmbus/govmbus/device/ic"
	"github.com/govmbus/govmbus/hosting"
)

func (s *Server) routes() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /v1/guests", s.guests)
	m.HandleFunc("GET /v1/host", s.host)
	m.HandleFunc("POST /v1/guests/{id}/heartbeat", s.heartbeat)
	m.HandleFunc("POST /v1/guests/{id}/shutdown", s.shutdown)
	m.HandleFunc("POST /v1/guests/{id}/time", s.time)
	m.HandleFunc("GET /v1/guests/{id}/kvp/{pool}", s.kvpList)
	m.HandleFunc("GET /v1/guests/{id}/kvp/{pool}/{key}", s.kvpGet)
	m.HandleFunc("PUT /v1/guests/{id}/kvp/{pool}/{key}", s.kvpSet)
	m.HandleFunc("DELETE /v1/guests/{id}/kvp/{pool}/{key}", s.kvpDelete)
	m.HandleFunc("POST /v1/capture", s.captureStart)
	m.HandleFunc("DELETE /v1/capture", s.captureStop)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("no endpoint %s %s", r.Method, r.URL.Path))
	})
	return s.guard(m)
}

func (s *Server) guests(w http.ResponseWriter, _ *http.Request) {
	out := []Guest{}
	for _, d := range s.cfg.Source.Devices() {
		if len(out) == 0 || out[len(out)-1].ID != d.Guest {
			out = append(out, Guest{ID: d.Guest, Channels: []Channel{}})
		}
		g := &out[len(out)-1]
		ch := d.Server.Channel()
		c := Channel{Device: d.Device, State: ch.State().String(), ID: ch.ChannelID()}
		if c.ID != 0 {
			st := ch.Stats()
			c.Stall = st.Stall
			c.Stats = &ChannelStats{
				PacketsIn: st.PacketsIn, BytesIn: st.BytesIn, PacketsOut: st.PacketsOut, BytesOut: st.BytesOut,
				SignalsSent: st.SignalsSent, SignalsSuppressed: st.SignalsSuppressed, Queued: st.Queued,
				CompletionsPending: st.CompletionsPending, Unstuck: st.Unstuck,
				PollHits: st.PollHits, PollMisses: st.PollMisses, Sleeps: st.Sleeps,
				InRingUsed: st.InRingUsed, InRingSize: st.InRingSize, OutRingUsed: st.OutRingUsed, OutRingSize: st.OutRingSize,
			}
		}
		if st, ok := d.Server.(interface{ Status() ic.Status }); ok {
			v := st.Status()
			c.IC = &v
		}
		if hb, ok := d.Server.(*ic.HeartbeatServer); ok {
			h := hb.Health()
			g.Health = &h
		}
		g.Channels = append(g.Channels, c)
	}
	writeJSON(w, out)
}

func (s *Server) host(w http.ResponseWriter, _ *http.Request) {
	h := HostInfo{Pid: os.Getpid()}
	if f := s.cfg.Servicings; f != nil {
		n, last := f()
		h.Servicings, h.LastBlackout = n, Duration(last)
	}
	writeJSON(w, h)
}

// server finds the guest's server of type T, answering 404 for an
// unknown guest or one without the service.
func server[T any](s *Server, w http.ResponseWriter, r *http.Request, service string) (T, bool) {
	var zero T
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("guest %q: not a guest id", r.PathValue("id")))
		return zero, false
	}
	known := false
	for _, d := range s.cfg.Source.Devices() {
		if d.Guest != id {
			continue
		}
		known = true
		if t, ok := d.Server.(T); ok {
			return t, true
		}
	}
	if !known {
		writeError(w, http.StatusNotFound, fmt.Errorf("no guest %d", id))
	} else {
		writeError(w, http.StatusNotFound, fmt.Errorf("guest %d has no %s device", id, service))
	}
	return zero, false
}

// wait is the request's context, ending after ?wait= (DefaultWait).
func wait(w http.ResponseWriter, r *http.Request) (context.Context, context.CancelFunc, bool) {
	d := DefaultWait
	if v := r.URL.Query().Get("wait"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 || d > MaxWait {
			writeError(w, http.StatusBadRequest, fmt.Errorf("wait %q: want a duration in (0, %v]", v, MaxWait))
			return nil, nil, false
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), d)
	return ctx, cancel, true
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) {
	hb, ok := server[*ic.HeartbeatServer](s, w, r, "heartbeat")
	if !ok {
		return
	}
	ctx, cancel, ok := wait(w, r)
	if !ok {
		return
	}
	defer cancel()
	h, err := hb.Beat(ctx)
	if err != nil {
		writeGuestError(w, r, "heartbeat", err)
		return
	}
	writeJSON(w, h)
}

func (s *Server) shutdown(w http.ResponseWriter, r *http.Request) {
	sd, ok := server[*ic.ShutdownServer](s, w, r, "shutdown")
	if !ok {
		return
	}
	var req ShutdownRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("shutdown request: %v", err))
		return
	}
	q := ic.ShutdownRequest{Force: req.Force, Message: req.Message, Timeout: time.Duration(req.Timeout)}
	switch req.Action {
	case "", "shutdown":
	case "reboot":
		q.Reboot = true
	case "hibernate":
		q.Hibernate = true
	default:
		writeError(w, http.StatusBadRequest, fmt.Errorf("action %q: want shutdown, reboot or hibernate", req.Action))
		return
	}
	if q.Timeout < 0 || q.Timeout > maxShutdownTimeout {
		writeError(w, http.StatusBadRequest, fmt.Errorf("shutdown: timeout %v: want 0 to %v", q.Timeout, maxShutdownTimeout))
		return
	}
	// The message's bound is the wire's: what Marshal refuses is bad
	// input, not the guest's doing.
	if _, err := (&ic.Shutdown{Message: q.Message}).Marshal(); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ctx, cancel, ok := wait(w, r)
	if !ok {
		return
	}
	defer cancel()
	res, err := sd.Request(ctx, q)
	if err != nil {
		writeGuestError(w, r, "shutdown", err)
		return
	}
	writeJSON(w, res)
}

func (s *Server) time(w http.ResponseWriter, r *http.Request) {
	ts, ok := server[*ic.TimeSyncServer](s, w, r, "timesync")
	if !ok {
		return
	}
	ctx, cancel, ok := wait(w, r)
	if !ok {
		return
	}
	defer cancel()
	smp, err := ts.Send(ctx, ic.TimeFlagSample)
	if err != nil {
		writeGuestError(w, r, "time", err)
		return
	}
	writeJSON(w, TimeResult{Sample: smp, Offset: Duration(-smp.RoundTrip / 2), Versions: ts.Status().Versions})
}

// kvp finds the KVP server and the pool, and the wait.
func (s *Server) kvp(w http.ResponseWriter, r *http.Request) (*ic.KVPServer, uint8, context.Context, context.CancelFunc, bool) {
	kv, ok := server[*ic.KVPServer](s, w, r, "kvp")
	if !ok {
		return nil, 0, nil, nil, false
	}
	pool, ok := ic.ParsePool(r.PathValue("pool"))
	if !ok {
		writeError(w, http.StatusBadRequest, fmt.Errorf("pool %q: want 0-4 or external, guest, auto, auto-external, auto-internal", r.PathValue("pool")))
		return nil, 0, nil, nil, false
	}
	ctx, cancel, ok := wait(w, r)
	return kv, pool, ctx, cancel, ok
}

func (s *Server) kvpList(w http.ResponseWriter, r *http.Request) {
	kv, pool, ctx, cancel, ok := s.kvp(w, r)
	if !ok {
		return
	}
	defer cancel()
	list, err := kv.List(ctx, pool)
	if err != nil {
		writeGuestError(w, r, "kvp list", err)
		return
	}
	writeJSON(w, KVResult{Pool: ic.PoolName(pool), Entries: append([]ic.KV{}, list...)})
}

func (s *Server) kvpGet(w http.ResponseWriter, r *http.Request) {
	kv, pool, ctx, cancel, ok := s.kvp(w, r)
	if !ok {
		return
	}
	defer cancel()
	key := r.PathValue("key")
	if !checkKV(w, pool, key, "") {
		return
	}
	v, err := kv.Get(ctx, pool, key)
	if err != nil {
		writeGuestError(w, r, "kvp get", err)
		return
	}
	writeJSON(w, KVResult{Pool: ic.PoolName(pool), Entries: []ic.KV{{Key: key, Value: v}}})
}

func (s *Server) kvpSet(w http.ResponseWriter, r *http.Request) {
	kv, pool, ctx, cancel, ok := s.kvp(w, r)
	if !ok {
		return
	}
	defer cancel()
	var body KVSet
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("kvp set: %v", err))
		return
	}
	key := r.PathValue("key")
	if !checkKV(w, pool, key, body.Value) {
		return
	}
	if err := kv.Set(ctx, pool, key, body.Value); err != nil {
		writeGuestError(w, r, "kvp set", err)
		return
	}
	writeJSON(w, KVResult{Pool: ic.PoolName(pool), Entries: []ic.KV{{Key: key, Value: body.Value}}})
}

func (s *Server) kvpDelete(w http.ResponseWriter, r *http.Request) {
	kv, pool, ctx, cancel, ok := s.kvp(w, r)
	if !ok {
		return
	}
	defer cancel()
	key := r.PathValue("key")
	if !checkKV(w, pool, key, "") {
		return
	}
	if err := kv.Delete(ctx, pool, key); err != nil {
		writeGuestError(w, r, "kvp delete", err)
		return
	}
	writeJSON(w, KVResult{Pool: ic.PoolName(pool), Entries: []ic.KV{{Key: key}}})
}

// checkKV answers 400 for a key or value the wire cannot carry (its
// sizes, a NUL): the same check the request's Marshal makes.
func checkKV(w http.ResponseWriter, pool uint8, key, value string) bool {
	if key == "" {
		writeError(w, http.StatusBadRequest, errors.New("kvp: an empty key"))
		return false
	}
	if _, err := (&ic.KVP{Op: ic.KVPSet, Pool: pool, ValueType: ic.TypeString, Key: key, Value: value}).Marshal(); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return false
	}
	return true
}

// writeGuestError answers a request the guest did not carry out, with
// the status that says why.
func writeGuestError(w http.ResponseWriter, r *http.Request, what string, err error) {
	if errors.Is(context.Cause(r.Context()), errServicing) {
		// The guest's answer goes to the successor, if the guest got
		// the request at all.
		if Idempotent(r.Method, r.URL.Path) {
			writeRetry(w, fmt.Errorf("%s: %w before the guest answered: try again", what, errServicing), true)
		} else {
			writeRetry(w, fmt.Errorf("%s: %w before the guest answered: the guest may have carried it out", what, errServicing), false)
		}
		return
	}
	code := http.StatusConflict // the guest's refusal: a status it answered
	switch {
	case errors.Is(err, ic.ErrNoAnswer), errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	case errors.Is(err, ic.ErrBusy), errors.Is(err, ic.ErrIncompatible):
		code = http.StatusServiceUnavailable
	case errors.Is(err, ic.ErrClosed), errors.Is(err, context.Canceled):
		code = http.StatusBadGateway
	}
	writeError(w, code, fmt.Errorf("%s: %w", what, err))
}

// CaptureSource is a Source that captures its bus at run time: a
// hosting.Daemon. The capture endpoints answer 501 for another.
type CaptureSource interface {
	StartCapture(hosting.CaptureConfig) error
	StopCapture() (capture.Stats, error)
}

var _ CaptureSource = (*hosting.Daemon)(nil)

func (s *Server) captureSource(w http.ResponseWriter) (CaptureSource, bool) {
	cs, ok := s.cfg.Source.(CaptureSource)
	if !ok {
		writeError(w, http.StatusNotImplemented, errors.New("this host does not capture"))
	}
	return cs, ok
}

// maxShutdownTimeout is the most a shutdown request tells the guest (in
// whole seconds on the wire, bounded by ic.ShutdownServer.Request).
const maxShutdownTimeout = (1 << 31) * time.Second

func (s *Server) captureStart(w http.ResponseWriter, r *http.Request) {
	cs, ok := s.captureSource(w)
	if !ok {
		return
	}
	var req CaptureRequest
	var bad error
	switch err := json.NewDecoder(r.Body).Decode(&req); {
	case err != nil:
		bad = err
	case req.Path == "":
		bad = errors.New("no path")
	case req.SnapLen < 0 || req.SnapLen > capture.MaxSnapLen:
		bad = fmt.Errorf("snap length %d: want 0 to %d", req.SnapLen, capture.MaxSnapLen)
	case req.MaxBytes < 0:
		bad = fmt.Errorf("size limit %d: want 0 (none) or more", req.MaxBytes)
	}
	if bad != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("capture request: %w", bad))
		return
	}
	err := cs.StartCapture(hosting.CaptureConfig{Path: req.Path, Options: capture.Options{SnapLen: req.SnapLen, MaxBytes: req.MaxBytes}})
	switch {
	case errors.Is(err, hosting.ErrCaptureBusy):
		writeError(w, http.StatusConflict, err)
	case errors.Is(err, syscall.EISDIR):
		// The request's fault: a directory for the file.
		writeError(w, http.StatusBadRequest, err)
	case err != nil:
		writeError(w, http.StatusInternalServerError, err)
	default:
		writeJSON(w, struct{}{})
	}
}

func (s *Server) captureStop(w http.ResponseWriter, _ *http.Request) {
	cs, ok := s.captureSource(w)
	if !ok {
		return
	}
	st, err := cs.StopCapture()
	if err != nil {
		writeError(w, http.StatusConflict, err)
		return
	}
	writeJSON(w, CaptureResult{Records: st.Records, Dropped: st.Dropped, Bytes: st.Bytes})
}

func writeError(w http.ResponseWriter, code int, err error) {
	write(w, code, Error{Error: err.Error()})
}

// writeRetry answers 503 for a servicing; retry says that the request was
// not carried out, or that carrying it out again does no harm.
func writeRetry(w http.ResponseWriter, err error, retry bool) {
	w.Header().Set("Retry-After", "1")
	write(w, http.StatusServiceUnavailable, Error{Error: err.Error(), Retry: retry})
}

func writeJSON(w http.ResponseWriter, v any) { write(w, http.StatusOK, v) }

// write answers v with its length, so that the answer is whole once
// flushed (guard), not only once the handler's connection finishes.
func write(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"admin: an answer that is no JSON"}`)
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	w.Write(b) //nolint:errcheck // the peer may be gone
}

// Idempotent says whether the request method path may be carried out
// twice to the same effect (a read, a heartbeat, a time sample, a KVP
// set), so that Client sends it again when a servicing cut it off. A
// shutdown, a KVP delete and the capture's start and stop are not.
func Idempotent(method, path string) bool {
	path, _, _ = strings.Cut(path, "?")
	switch method {
	case http.MethodGet, http.MethodPut:
		return true
	case http.MethodPost:
		return strings.HasPrefix(path, "/v1/guests/") && (strings.HasSuffix(path, "/heartbeat") || strings.HasSuffix(path, "/time"))
	}
	return false
}

// Devices is hosting.Daemon's, for the compiler's check that a Daemon is
// a Source.
var _ Source = (*hosting.Daemon)(nil)
