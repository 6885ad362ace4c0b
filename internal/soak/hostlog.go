package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/govmbus/govmbus/internal/child"
)

// serviceTimeout bounds one servicing: SIGHUP to "servicing complete".
const serviceTimeout = 30 * time.Second

// logEntry is one JSON log line of the host.
type logEntry map[string]any

// hostLog is the host process and its JSON log on stderr, read as what
// soak counts and waits for: the host listens, a servicing completed or
// failed, a line at level ERROR or WARN.
type hostLog struct {
	proc     *child.Process
	logs     chan logEntry // stderr JSON lines
	complete chan logEntry // "servicing complete" lines, once followed

	mu             sync.Mutex
	errors, warns  int
	firstErrors    []string
	failedServices int
}

// startHost starts the host with args (which must ask for a JSON log).
func startHost(bin string, args []string) (*hostLog, error) {
	h := &hostLog{logs: make(chan logEntry, 256), complete: make(chan logEntry, 1)}
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
	if json.Unmarshal(b, &l) != nil {
		return
	}
	// Only servicing lines are awaited more than once; a full queue drops
	// the chatter, never those.
	if msg, _ := l["msg"].(string); strings.HasPrefix(msg, "servicing") {
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
			if l["msg"] == msg {
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
			enc.Encode(l) //nolint:errcheck // a copy; the soak goes on without it
			msg, _ := l["msg"].(string)
			h.mu.Lock()
			switch l["level"] {
			case "ERROR":
				h.errors++
				if len(h.firstErrors) < 5 {
					b, _ := json.Marshal(l)
					h.firstErrors = append(h.firstErrors, string(b))
				}
			case "WARN":
				h.warns++
			}
			if strings.HasPrefix(msg, "servicing failed") {
				h.failedServices++
			}
			h.mu.Unlock()
			if msg == "servicing complete" {
				select {
				case h.complete <- l:
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
	case l := <-h.complete:
		if l["servicing"] != float64(n) {
			return 0, fmt.Errorf("the host counts servicing %v", l["servicing"])
		}
		if l["pid"] != float64(h.proc.Pid()) {
			return 0, fmt.Errorf("the successor's pid %v is not the host's %d", l["pid"], h.proc.Pid())
		}
		ms, ok := l["blackout_ms"].(float64)
		if !ok {
			return 0, fmt.Errorf("no blackout_ms in the servicing complete line")
		}
		return ms, nil
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
