package hosting

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"
)

// Event is what a daemon tells its subscribers (Config.Events) and its
// log: that it listens, and how each servicing went. The concrete types
// are *Listening, *ServicingStarted, *ServicingComplete and
// *ServicingFailed.
//
// Each event's JSON form is its log line: the daemon logs every event
// (slog, Config.Logger) under a fixed message with fixed attributes, so
// that a process watching a host through its JSON log (vmbus demo and
// soak run the host as a child) decodes the line with DecodeEvent into
// the same type the daemon delivered, instead of matching text.
type Event interface {
	// Msg is the event's log message: "host listening", "servicing
	// complete" and so on.
	Msg() string
	// Level is the level the event is logged at.
	Level() slog.Level
	// Attrs are the event's log attributes, in order.
	Attrs() []slog.Attr
}

// Listening: the daemon serves its socket (Serve).
type Listening struct {
	Socket  string // the socket path
	Devices int    // devices offered to every guest
}

// ServicingStarted: a servicing begins (Service, ServiceTo), before its
// pre-flight. It is logged at debug level only.
type ServicingStarted struct {
	Servicing uint32 // the servicing's number, counted since the host first started
	Mode      string // "exec", "spawn" or "in-process"
}

// ServicingComplete: every channel runs again, in the successor (Exec), or,
// after a failure late in a servicing, in the same daemon: the servicing was
// rolled back (logged as "servicing rolled back", not "servicing complete",
// so that a reader that counts successes by the message counts right).
type ServicingComplete struct {
	Servicing     uint32        // counted since the host first started
	Blackout      time.Duration // from the first pause until every channel runs again (µs precision)
	Phases        []Phase       // the blackout by step, in order
	Guests        int           // guests restored
	GuestsDropped int           // guests the successor could not restore: disconnected
	Channels      int           // device channels restored (not offered anew)
	Exec          bool          // a successor took over; false: restored in the process that saved
	Spawned       bool          // the successor was spawned
	Pid           int           // the process that serves now
}

// Phase is one step of a servicing's blackout.
type Phase struct {
	Name     string        // "pause", "bus_save", "exec", "channel_restore", ...
	Duration time.Duration // µs precision
}

// ServicingFailed: a servicing did not happen, or its successor did not
// take over. Unless Restoring, the daemon serves on as before; with
// Restoring the guests were saved and are restored in this process (a
// ServicingComplete with Exec false, "servicing rolled back", follows).
type ServicingFailed struct {
	// Stage is where it failed: "spawn", "preflight" (the successor
	// cannot read the state: refused before anything paused),
	// "listener", "pause", "save bus", "save or exec", or "stop" (the
	// context of ServiceContext ended first; Restoring if it ended
	// after the save).
	Stage     string
	Guest     uint64 // Stage "pause": the guest whose device failed to pause
	Err       error
	Restoring bool
}

// Msg is "host listening".
func (*Listening) Msg() string { return "host listening" }

// Msg is "servicing started".
func (*ServicingStarted) Msg() string { return "servicing started" }

// Msg is "servicing complete", or "servicing rolled back" without Exec.
func (e *ServicingComplete) Msg() string {
	if !e.Exec {
		return "servicing rolled back"
	}
	return "servicing complete"
}

// Msg is "servicing refused" for a pre-flight's refusal, "servicing
// failed; restoring in this process" with Restoring, "servicing failed"
// otherwise.
func (e *ServicingFailed) Msg() string {
	switch {
	case e.Stage == "preflight":
		return "servicing refused"
	case e.Restoring:
		return "servicing failed; restoring in this process"
	}
	return "servicing failed"
}

// Level is Info.
func (*Listening) Level() slog.Level { return slog.LevelInfo }

// Level is Debug: a servicing's start is noted, not announced.
func (*ServicingStarted) Level() slog.Level { return slog.LevelDebug }

// Level is Info, or Warn for a servicing rolled back: its guests were
// paused for nothing.
func (e *ServicingComplete) Level() slog.Level {
	if !e.Exec {
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// Level is Error, or Warn for Stage "stop": asked for, not a fault.
func (e *ServicingFailed) Level() slog.Level {
	if e.Stage == "stop" {
		return slog.LevelWarn
	}
	return slog.LevelError
}

// Attrs are socket and devices.
func (e *Listening) Attrs() []slog.Attr {
	return []slog.Attr{slog.String("socket", e.Socket), slog.Int("devices", e.Devices)}
}

// Attrs are servicing and mode.
func (e *ServicingStarted) Attrs() []slog.Attr {
	return []slog.Attr{slog.Any("servicing", e.Servicing), slog.String("mode", e.Mode)}
}

// Attrs are blackout_ms, phases_ms (a group, in order), servicing, guests,
// guests_dropped, channels, exec, spawned and pid.
func (e *ServicingComplete) Attrs() []slog.Attr {
	ph := make([]slog.Attr, len(e.Phases))
	for i, p := range e.Phases {
		ph[i] = slog.Float64(p.Name, ms(p.Duration))
	}
	return []slog.Attr{
		slog.Float64("blackout_ms", ms(e.Blackout)), {Key: "phases_ms", Value: slog.GroupValue(ph...)},
		slog.Any("servicing", e.Servicing), slog.Int("guests", e.Guests), slog.Int("guests_dropped", e.GuestsDropped), slog.Int("channels", e.Channels),
		slog.Bool("exec", e.Exec), slog.Bool("spawned", e.Spawned), slog.Int("pid", e.Pid),
	}
}

// Attrs are stage (not for a refusal), guest (stage "pause") and err.
func (e *ServicingFailed) Attrs() []slog.Attr {
	var a []slog.Attr
	if e.Stage != "preflight" {
		a = append(a, slog.String("stage", e.Stage))
	}
	if e.Stage == "pause" {
		a = append(a, slog.Uint64("guest", e.Guest))
	}
	return append(a, slog.Any("err", e.Err))
}

// MarshalJSON is the event's JSON form: its log line's msg and attributes.
func (e *Listening) MarshalJSON() ([]byte, error) { return eventJSON(e) }

// MarshalJSON is the event's JSON form: its log line's msg and attributes.
func (e *ServicingStarted) MarshalJSON() ([]byte, error) { return eventJSON(e) }

// MarshalJSON is the event's JSON form: its log line's msg and attributes.
func (e *ServicingComplete) MarshalJSON() ([]byte, error) { return eventJSON(e) }

// MarshalJSON is the event's JSON form: its log line's msg and attributes.
func (e *ServicingFailed) MarshalJSON() ([]byte, error) { return eventJSON(e) }

// eventJSON writes e as slog's JSON handler would, without time and level.
func eventJSON(e Event) ([]byte, error) {
	var b bytes.Buffer
	h := slog.NewJSONHandler(&b, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
				return slog.Attr{}
			}
			return a
		},
	})
	r := slog.NewRecord(time.Time{}, e.Level(), e.Msg(), 0)
	r.AddAttrs(e.Attrs()...)
	if err := h.Handle(context.Background(), r); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// logEvent writes e to log.
func logEvent(log *slog.Logger, e Event) {
	log.LogAttrs(context.Background(), e.Level(), e.Msg(), e.Attrs()...)
}

// ErrNotEvent is DecodeEvent's answer for a well-formed line that is no
// event (another log line of the host).
var ErrNotEvent = errors.New("hosting: not an event")

// maxEventLine bounds a line DecodeEvent reads: a log line of a host is
// far below it.
const maxEventLine = 1 << 20

// eventLine is the fields of every event's JSON form; a field an event
// does not have stays zero.
type eventLine struct {
	Msg        string     `json:"msg"`
	Socket     string     `json:"socket"`
	Devices    int        `json:"devices"`
	Servicing  uint32     `json:"servicing"`
	Mode       string     `json:"mode"`
	BlackoutMs float64    `json:"blackout_ms"`
	Phases     phasesJSON `json:"phases_ms"`
	Guests     int        `json:"guests"`
	Dropped    int        `json:"guests_dropped"`
	Channels   int        `json:"channels"`
	Exec       bool       `json:"exec"`
	Spawned    bool       `json:"spawned"`
	Pid        int        `json:"pid"`
	Stage      string     `json:"stage"`
	Guest      uint64     `json:"guest"`
	Err        *string    `json:"err"`
}

// phasesJSON reads the phases_ms object in order.
type phasesJSON []Phase

func (p *phasesJSON) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("phases_ms: not an object")
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := t.(string)
		var v float64
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("phases_ms.%s: %w", name, err)
		}
		d, err := fromMs(v)
		if err != nil {
			return fmt.Errorf("phases_ms.%s: %w", name, err)
		}
		*p = append(*p, Phase{Name: name, Duration: d})
	}
	_, err := dec.Token()
	return err
}

// fromMs is a duration in milliseconds as the JSON form has it, to the
// microsecond (what ms keeps), if it is one.
func fromMs(v float64) (time.Duration, error) {
	us := math.Round(v * 1000)
	if math.IsNaN(us) || us < 0 || us > float64(math.MaxInt64/int64(time.Microsecond)) {
		return 0, fmt.Errorf("%g ms is no duration", v)
	}
	return time.Duration(us) * time.Microsecond, nil
}

// DecodeEvent reads an event from its JSON form: a line of a daemon's
// JSON log (slog.JSONHandler) or what MarshalJSON wrote. A line of the log
// that is no event gives ErrNotEvent; a malformed one another error. The
// line is untrusted: it is checked, never trusted to be well-formed.
func DecodeEvent(line []byte) (Event, error) {
	if len(line) > maxEventLine {
		return nil, fmt.Errorf("hosting: an event line of %d bytes", len(line))
	}
	var l eventLine
	if err := json.Unmarshal(line, &l); err != nil {
		return nil, fmt.Errorf("hosting: event: %w", err)
	}
	errOf := func() error {
		if l.Err == nil {
			return nil
		}
		return errors.New(*l.Err)
	}
	switch l.Msg {
	case "host listening":
		return &Listening{Socket: l.Socket, Devices: l.Devices}, nil
	case "servicing started":
		return &ServicingStarted{Servicing: l.Servicing, Mode: l.Mode}, nil
	case "servicing complete", "servicing rolled back":
		b, err := fromMs(l.BlackoutMs)
		if err != nil {
			return nil, fmt.Errorf("hosting: event: blackout_ms: %w", err)
		}
		return &ServicingComplete{Servicing: l.Servicing, Blackout: b, Phases: l.Phases, Guests: l.Guests, GuestsDropped: l.Dropped,
			Channels: l.Channels, Exec: l.Exec && l.Msg == "servicing complete", Spawned: l.Spawned, Pid: l.Pid}, nil
	case "servicing refused":
		return &ServicingFailed{Stage: "preflight", Err: errOf()}, nil
	case "servicing failed", "servicing failed; restoring in this process":
		e := &ServicingFailed{Stage: l.Stage, Err: errOf(), Restoring: l.Msg != "servicing failed"}
		if e.Stage == "pause" {
			e.Guest = l.Guest // the only stage that names one
		}
		if e.Stage == "preflight" {
			e.Restoring = false // a refusal is before any pause
		}
		return e, nil
	}
	return nil, ErrNotEvent
}
