package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/govmbus/govmbus/internal/child"
)

// serviceWait bounds one servicing: SIGHUP to "servicing complete".
const serviceWait = 15 * time.Second

// logEntry is one JSON log line of the host.
type logEntry map[string]any

// hostLog is the host process and its JSON log on stderr, read as the
// events demo waits for: the host listens, a servicing completed.
type hostLog struct {
	proc *child.Process
	logs chan logEntry // stderr JSON lines
}

// startHost starts the host with args (which must ask for a JSON log).
func startHost(bin string, args []string) (*hostLog, error) {
	h := &hostLog{logs: make(chan logEntry, 256)}
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

// wait waits for the next log line whose message is msg.
func (h *hostLog) wait(ctx context.Context, msg string, timeout time.Duration) (logEntry, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l := <-h.logs:
			if l["msg"] == msg {
				return l, nil
			}
		case <-h.proc.Done():
			return nil, fmt.Errorf("exited (%v) before %q", h.proc.Err(), msg)
		case <-t.C:
			return nil, fmt.Errorf("no %q within %v", msg, timeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// listening waits until the host serves.
func (h *hostLog) listening(ctx context.Context, timeout time.Duration) error {
	_, err := h.wait(ctx, "host listening", timeout)
	return err
}

// service sends the host SIGHUP and waits for its n-th "servicing
// complete", returning the blackout in milliseconds.
func (h *hostLog) service(ctx context.Context, n int) (float64, error) {
	if err := h.proc.Signal(syscall.SIGHUP); err != nil {
		return 0, err
	}
	l, err := h.wait(ctx, "servicing complete", serviceWait)
	if err != nil {
		return 0, fmt.Errorf("%w%s", err, h.proc.Tail())
	}
	if l["servicing"] != float64(n) {
		return 0, fmt.Errorf("the host counts servicing %v", l["servicing"])
	}
	if l["pid"] != float64(h.proc.Pid()) {
		return 0, fmt.Errorf("the successor's pid %v is not the host's %d", l["pid"], h.proc.Pid())
	}
	ms, ok := l["blackout_ms"].(float64)
	if !ok {
		return 0, errors.New("no blackout_ms in the servicing complete line")
	}
	return ms, nil
}
