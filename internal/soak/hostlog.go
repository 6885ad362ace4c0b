package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/internal/child"
)

// serviceTimeout bounds one servicing: SIGHUP to "servicing complete".
const serviceTimeout = 30 * time.Second

// logEntry is one JSON log line of the host, and the event it is
// (hosting.DecodeEvent), if any.
type logEntry struct {
	fields map[string]any
	event  hosting.Event
}

// hostLog is the host process and its JSON log on stderr, read as what
// soak counts and waits for: the host listens, a servicing completed or
// failed, a line at level ERROR or WARN.
type hostLog struct {
	proc     *child.Process
	logs     chan logEntry                   // stderr JSON lines
	complete chan *hosting.ServicingComplete // once followed

	mu             sync.Mutex
	errors, warns  int
	firstErrors    []string
	failedServices int
}

// startHost starts the host with args (which must ask for a JSON log).
func startHost(bin string, args []string) (*hostLog, error) {
	h := &hostLog{logs: make(chan logEntry, 256), complete: make(chan *hosting.ServicingComplete, 1)}
	p, err := child.Start(bin, args, h.line)
	if err != nil {
		return nil, err
	}
	h.proc = p
	return h, nil
}

// line is the host's stderr hook.
func (h *hostLog) line(b []byte) {
	var l logEntry
	if json.Unmarshal(b, &l.fields) != nil {
		return
	}
	// Events are awaited and counted; a full queue drops the chatter,
	// never those.
	if e, err := hosting.DecodeEvent(b); err == nil {
		l.event = e
		h.logs <- l
		return
	}
	select {
	case h.logs <- l:
	default:
	}
}

// listening waits until the host serves; the lines before are dropped.
func (h *hostLog) listening(ctx context.Context, timeout time.Duration) error {
	const msg = "host listening"
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l := <-h.logs:
			if _, ok := l.event.(*hosting.Listening); ok {
				return nil
			}
		case <-h.proc.Done():
			return fmt.Errorf("exited (%v) before %q", h.proc.Err(), msg)
		case <-t.C:
			return fmt.Errorf("no %q within %v", msg, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// follow reads the log until ctx ends, copying each line to w (if not
// nil), counting errors, warnings and failed servicings, and handing
// "servicing complete" lines to service.
func (h *hostLog) follow(ctx context.Context, w io.Writer) {
	enc := json.NewEncoder(io.Discard)
	if w != nil {
		enc = json.NewEncoder(w)
	}
	for {
		select {
		case l := <-h.logs:
			enc.Encode(l.fields) //nolint:errcheck // a copy; the soak goes on without it
			h.mu.Lock()
			switch l.fields["level"] {
			case "ERROR":
				h.errors++
				if len(h.firstErrors) < 5 {
					b, _ := json.Marshal(l.fields)
					h.firstErrors = append(h.firstErrors, string(b))
				}
			case "WARN":
				h.warns++
			}
			if f, ok := l.event.(*hosting.ServicingFailed); ok && f.Stage != "preflight" {
				h.failedServices++
			}
			h.mu.Unlock()
			if c, ok := l.event.(*hosting.ServicingComplete); ok {
				select {
				case h.complete <- c:
				default: // nobody waits for it: the soak is ending
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

// service sends the host SIGHUP and waits for its n-th "servicing
// complete" (follow must run), returning the blackout in milliseconds.
func (h *hostLog) service(n int, ending <-chan struct{}) (float64, error) {
	if err := h.proc.Signal(syscall.SIGHUP); err != nil {
		return 0, err
	}
	t := time.NewTimer(serviceTimeout)
	defer t.Stop()
	select {
	case c := <-h.complete:
		if c.Servicing != uint32(n) {
			return 0, fmt.Errorf("the host counts servicing %d", c.Servicing)
		}
		if !c.Exec {
			return 0, fmt.Errorf("servicing %d rolled back: the host restored its guests in the process that saved them%s", c.Servicing, h.proc.Tail())
		}
		if c.Pid != h.proc.Pid() {
			return 0, fmt.Errorf("the successor's pid %d is not the host's %d", c.Pid, h.proc.Pid())
		}
		return float64(c.Blackout.Microseconds()) / 1000, nil
	case <-h.proc.Done():
		return 0, fmt.Errorf("the host exited (%v)%s", h.proc.Err(), h.proc.Tail())
	case <-t.C:
		return 0, fmt.Errorf("no servicing complete within %v%s", serviceTimeout, h.proc.Tail())
	case <-ending:
		return 0, fmt.Errorf("the soak ended while it ran")
	}
}

// counts is what follow counted: error and warning lines, the first
// error lines, failed servicings.
func (h *hostLog) counts() (errors, warns int, firstErrors []string, failedServices int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.errors, h.warns, h.firstErrors, h.failedServices
}
