package hosting

import (
	"github.com/govmbus/govmbus/capture"
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

// openCapture starts the configured capture on the daemon's host: a
// daemon that starts afresh (Serve) truncates the file, a servicing's
// successor appends a section to it. In the same process, after a
// servicing that failed, the predecessor's capture goes on instead.
func (d *Daemon) openCapture(successor bool) error {
	if d.capw != nil {
		d.capw.Resume()
		d.h.Capture().Swap(d.capw)
		return nil
	}
	if d.cfg.Capture.Path == "" {
		return nil
	}
	open := capture.Create
	if successor {
		open = capture.Append
	}
	w, err := open(d.cfg.Capture.Path, d.cfg.Capture.Options)
	if err != nil {
		return err
	}
	d.capw = w
	d.h.Capture().Swap(w)
	return nil
}

// suspendCapture ends this image's writing before a successor appends:
// what it recorded is in the file, and nothing after it is written.
func (d *Daemon) suspendCapture() {
	if d.capw != nil {
		if err := d.capw.Suspend(); err != nil {
			d.log.Warn("capture", "err", err)
		}
	}
}

// closeCapture detaches and closes the capture.
func (d *Daemon) closeCapture() {
	if d.capw == nil {
		return
	}
	if d.h != nil {
		d.h.Capture().Swap(nil)
	}
	st := d.capw.Stats()
	if err := d.capw.Close(); err != nil {
		d.log.Warn("capture", "err", err)
	}
	d.log.Info("capture closed", "path", d.cfg.Capture.Path, "records", st.Records, "dropped", st.Dropped, "bytes", st.Bytes)
	d.capw = nil
}

// captureEvent records e in the capture, if one runs.
func (d *Daemon) captureEvent(e Event) {
	if d.capw != nil {
		d.capw.Event(e)
	}
}
