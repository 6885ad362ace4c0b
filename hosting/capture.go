package hosting

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/govmbus/govmbus/capture"
	"github.com/govmbus/govmbus/host"
)

// CaptureConfig configures a daemon's capture of its bus (package
// capture): every control message, ring packet and signal of its
// guests, and its events, to one pcapng file.
type CaptureConfig struct {
	// Path is the file; empty: no capture.
	Path string
	// Options are the snap length and the size limit.
	capture.Options
}

// captureEnv carries the capture a servicing's successor continues
// ("PATH\tSNAPLEN\tMAXBYTES", empty for none) when it differs from the
// command line's: StartCapture and StopCapture set it, and every
// successor, exec'd or spawned, inherits it.
const captureEnv = "GOVMBUS_CAPTURE"

// ErrCaptureBusy is StartCapture's error while a capture runs, and both
// calls' while a servicing hands the capture over.
var ErrCaptureBusy = errors.New("hosting: a capture is running or being handed over")

// ErrNoCapture is StopCapture's error when no capture runs.
var ErrNoCapture = errors.New("hosting: no capture is running")

// captureState is the daemon's capture, guarded by capMu: the admin API
// starts and stops it from its own goroutines.
type captureState struct {
	cfg     CaptureConfig
	w       *capture.Writer
	h       *host.Host // the host it is attached to
	held    bool       // suspended for a handover
	busy    bool       // a servicing runs: no start or stop until it ends
	changed bool       // started or stopped at run time
	// appended: w added a section to a predecessor's file, whose records
	// its Stats do not count.
	appended bool
}

// servicingCapture marks a servicing's start (on) and end: a capture
// started or stopped in between would not reach a successor spawned
// already.
func (d *Daemon) servicingCapture(on bool) {
	d.capMu.Lock()
	d.capt.busy = on
	d.capMu.Unlock()
}

// openCapture starts the configured capture on h: a daemon that starts
// afresh (Serve) truncates the file, a servicing's successor appends a
// section to it. In the same process, after a servicing that failed, the
// predecessor's capture goes on instead.
func (d *Daemon) openCapture(h *host.Host, successor bool) error {
	d.capMu.Lock()
	defer d.capMu.Unlock()
	c := &d.capt
	c.h = h
	if c.w != nil {
		c.w.Resume()
		c.held = false
		h.Capture().Swap(c.w)
		return nil
	}
	if successor && !c.changed {
		if v, ok := os.LookupEnv(captureEnv); ok {
			cfg, err := parseCaptureEnv(v)
			if err != nil {
				return err
			}
			c.cfg, c.changed = cfg, true
		}
	}
	if c.cfg.Path == "" {
		return nil
	}
	open := capture.Create
	if successor {
		open = capture.Append
	}
	w, err := open(c.cfg.Path, c.cfg.Options)
	if err != nil {
		return err
	}
	c.w, c.appended = w, successor
	h.Capture().Swap(w)
	return nil
}

func parseCaptureEnv(v string) (CaptureConfig, error) {
	if v == "" {
		return CaptureConfig{}, nil
	}
	f := strings.Split(v, "\t")
	if len(f) != 3 {
		return CaptureConfig{}, fmt.Errorf("hosting: %s %q: want PATH, SNAPLEN, MAXBYTES", captureEnv, v)
	}
	snap, err1 := strconv.Atoi(f[1])
	maxBytes, err2 := strconv.ParseInt(f[2], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return CaptureConfig{}, fmt.Errorf("hosting: %s: %w", captureEnv, err)
	}
	return CaptureConfig{Path: f[0], Options: capture.Options{SnapLen: snap, MaxBytes: maxBytes}}, nil
}

// suspendCapture ends this image's writing before a successor appends:
// what it recorded is in the file, and nothing after it is written. A
// capture started or stopped at run time reaches a successor in this
// process (next) through its configuration.
func (d *Daemon) suspendCapture(next *Daemon) {
	d.capMu.Lock()
	defer d.capMu.Unlock()
	c := &d.capt
	if c.changed && next != nil {
		next.capMu.Lock()
		next.capt.cfg, next.capt.changed = c.cfg, true
		next.capMu.Unlock()
	}
	if c.w != nil {
		c.held = true
		if err := c.w.Suspend(); err != nil {
			d.log.Warn("capture", "err", err)
		}
	}
}

// resumeCapture ends a suspendCapture: the servicing failed and this
// image serves on.
func (d *Daemon) resumeCapture() {
	d.capMu.Lock()
	defer d.capMu.Unlock()
	if d.capt.w != nil {
		d.capt.w.Resume()
		d.capt.held = false
	}
}

// closeCapture detaches and closes the capture.
func (d *Daemon) closeCapture() {
	d.capMu.Lock()
	defer d.capMu.Unlock()
	d.closeCaptureLocked()
}

func (d *Daemon) closeCaptureLocked() {
	c := &d.capt
	if c.w == nil {
		return
	}
	if c.h != nil {
		c.h.Capture().Swap(nil)
	}
	st := c.w.Stats()
	if err := c.w.Close(); err != nil {
		d.log.Warn("capture", "err", err)
	}
	d.log.Info("capture closed", "path", c.cfg.Path, "records", st.Records, "dropped", st.Dropped, "bytes", st.Bytes)
	c.w = nil
}

// captureEvent records e in the capture, if one runs.
func (d *Daemon) captureEvent(e Event) {
	d.capMu.Lock()
	w := d.capt.w
	d.capMu.Unlock()
	if w != nil {
		w.Event(e)
	}
}

// StartCapture starts capturing the bus to cfg.Path (truncated), while
// the daemon serves; servicings carry it on. It is safe for concurrent
// use with the daemon's methods. ErrCaptureBusy: one runs already.
func (d *Daemon) StartCapture(cfg CaptureConfig) error {
	if cfg.Path == "" {
		return errors.New("hosting: capture: no path")
	}
	d.capMu.Lock()
	defer d.capMu.Unlock()
	c := &d.capt
	if c.w != nil || c.held || c.busy {
		return ErrCaptureBusy
	}
	if c.h == nil {
		return errors.New("hosting: capture: the daemon does not serve")
	}
	w, err := capture.Create(cfg.Path, cfg.Options)
	if err != nil {
		return err
	}
	c.cfg, c.w, c.changed, c.appended = cfg, w, true, false
	c.h.Capture().Swap(w)
	os.Setenv(captureEnv, fmt.Sprintf("%s\t%d\t%d", cfg.Path, cfg.SnapLen, cfg.MaxBytes)) //nolint:errcheck // a valid name
	d.log.Info("capture started", "path", cfg.Path)
	return nil
}

// StopCapture stops the running capture and returns its counts
// (ErrNoCapture if none runs):
// Records and Bytes those of the whole file, the sections of the images
// before a servicing included; Dropped this image's (a predecessor's are
// in no file). It is safe for concurrent use with the daemon's methods.
func (d *Daemon) StopCapture() (capture.Stats, error) {
	d.capMu.Lock()
	c := &d.capt
	if c.held || c.busy {
		d.capMu.Unlock()
		return capture.Stats{}, ErrCaptureBusy
	}
	if c.w == nil {
		d.capMu.Unlock()
		return capture.Stats{}, ErrNoCapture
	}
	st := c.w.Stats()
	appended, path := c.appended, c.cfg.Path
	d.closeCaptureLocked()
	c.cfg, c.changed = CaptureConfig{}, true
	os.Setenv(captureEnv, "") //nolint:errcheck // a valid name
	d.capMu.Unlock()
	if appended {
		// The predecessors' sections are read back, once the file is
		// closed: outside any blackout, at an operator's request, and
		// outside capMu, which the daemon's events take.
		if n, err := capture.CountRecords(path); err == nil {
			st.Records = n
		} else {
			d.log.Warn("capture: counting the records of the sections before this image's", "path", path, "err", err)
		}
	}
	return st, nil
}
