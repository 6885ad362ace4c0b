package hosting

import (
	"bytes"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sampleEvents is one event of each type and shape.
func sampleEvents() []Event {
	return []Event{
		&Listening{Socket: "/run/bus.sock", Devices: 2},
		&ServicingStarted{Servicing: 4, Mode: "spawn"},
		&ServicingComplete{Servicing: 4, Blackout: 12345 * time.Microsecond,
			Phases: []Phase{{"pause", 1500 * time.Microsecond}, {"bus_save", 999 * time.Microsecond}, {"exec", 6 * time.Millisecond}, {"start", 0}},
			Guests: 32, GuestsDropped: 1, Channels: 64, Exec: true, Spawned: true, Pid: 4242},
		&ServicingFailed{Stage: "spawn", Err: errors.New("successor 77: exited")},
		&ServicingFailed{Stage: "preflight", Err: errors.New("the successor (answer) does not read 0x0201 host-guest")},
		&ServicingFailed{Stage: "pause", Guest: 7, Err: errors.New("paused twice")},
		&ServicingFailed{Stage: "save or exec", Err: errors.New("exec: no such file"), Restoring: true},
		&ServicingComplete{Servicing: 5, Blackout: 2 * time.Millisecond, Phases: []Phase{{"pause", time.Millisecond}, {"start", 0}},
			Guests: 1, Channels: 2, Pid: 4242},
	}
}

// TestEventsDecodeFromLog: each event, as the daemon logs it with slog's
// JSON handler and as MarshalJSON writes it, decodes to an equal event;
// the log lines keep the messages and attributes the host always logged.
func TestEventsDecodeFromLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, e := range sampleEvents() {
		buf.Reset()
		logEvent(log, e)
		got, err := DecodeEvent(bytes.TrimSpace(buf.Bytes()))
		if err != nil || !sameEvent(got, e) {
			t.Errorf("log line %s: %#v, %v", buf.Bytes(), got, err)
		}
		j, err := e.(interface{ MarshalJSON() ([]byte, error) }).MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if got, err := DecodeEvent(j); err != nil || !sameEvent(got, e) {
			t.Errorf("JSON %s: %#v, %v", j, got, err)
		}
	}
	buf.Reset()
	logEvent(log, sampleEvents()[2])
	for _, want := range []string{`"level":"INFO","msg":"servicing complete","blackout_ms":12.345,"phases_ms":{"pause":1.5,"bus_save":0.999,"exec":6,"start":0},"servicing":4,"guests":32,"guests_dropped":1,"channels":64,"exec":true,"spawned":true,"pid":4242}`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log line %s, want %s", buf.Bytes(), want)
		}
	}
	buf.Reset()
	logEvent(log, sampleEvents()[5])
	if want := `"level":"ERROR","msg":"servicing failed","stage":"pause","guest":7,"err":"paused twice"}`; !strings.Contains(buf.String(), want) {
		t.Errorf("log line %s, want %s", buf.Bytes(), want)
	}
	// A servicing rolled back is not logged as a complete one.
	buf.Reset()
	logEvent(log, sampleEvents()[7])
	if want := `"level":"WARN","msg":"servicing rolled back","blackout_ms":2,`; !strings.Contains(buf.String(), want) {
		t.Errorf("log line %s, want %s", buf.Bytes(), want)
	}
}

// TestDecodeEventRollback: a release before "servicing rolled back" logged
// a rollback as "servicing complete" with exec false; both decode to a
// ServicingComplete without Exec, and a "servicing rolled back" line is
// never taken as a successor's.
func TestDecodeEventRollback(t *testing.T) {
	for _, line := range []string{
		`{"msg":"servicing complete","servicing":3,"exec":false}`,
		`{"msg":"servicing rolled back","servicing":3,"exec":true}`,
	} {
		e, err := DecodeEvent([]byte(line))
		c, ok := e.(*ServicingComplete)
		if err != nil || !ok || c.Exec || c.Servicing != 3 || c.Msg() != "servicing rolled back" {
			t.Errorf("%s: %#v, %v", line, e, err)
		}
	}
}

// TestDecodeEventRejects: other log lines are no events; malformed ones
// are errors, not events.
func TestDecodeEventRejects(t *testing.T) {
	if _, err := DecodeEvent([]byte(`{"time":"x","level":"INFO","msg":"metrics listening","addr":"127.0.0.1:1"}`)); !errors.Is(err, ErrNotEvent) {
		t.Errorf("metrics listening: %v", err)
	}
	for _, bad := range []string{
		``, `{`, `[]`, `{"msg":"servicing complete","blackout_ms":-1}`, `{"msg":"servicing complete","blackout_ms":1e300}`,
		`{"msg":"servicing complete","phases_ms":[1]}`, `{"msg":"servicing complete","phases_ms":{"a":"b"}}`,
		`{"msg":"host listening","devices":"two"}`,
	} {
		if e, err := DecodeEvent([]byte(bad)); err == nil || e != nil {
			t.Errorf("%q: %v, %v", bad, e, err)
		}
	}
}

// FuzzDecodeEvent: a watcher decodes a child's log lines, which it does
// not trust: any bytes give an event or an error, never both, never a
// panic, and an event re-encodes to one that decodes the same.
func FuzzDecodeEvent(f *testing.F) {
	for _, e := range sampleEvents() {
		j, err := e.(interface{ MarshalJSON() ([]byte, error) }).MarshalJSON()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(j)
	}
	f.Add([]byte(`{"msg":"servicing complete","phases_ms":{"a":1,"a":2}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := DecodeEvent(line)
		if (e == nil) == (err == nil) {
			t.Fatalf("event %v and error %v", e, err)
		}
		if e == nil {
			return
		}
		j, err := e.(interface{ MarshalJSON() ([]byte, error) }).MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeEvent(j)
		if err != nil || !sameEvent(again, e) {
			t.Fatalf("%s: %#v, %v; was %#v", j, again, err, e)
		}
	})
}

// sameEvent compares events, errors by their text.
func sameEvent(a, b Event) bool {
	fa, oka := a.(*ServicingFailed)
	fb, okb := b.(*ServicingFailed)
	if oka && okb {
		x, y := *fa, *fb
		if (x.Err == nil) != (y.Err == nil) || (x.Err != nil && x.Err.Error() != y.Err.Error()) {
			return false
		}
		x.Err, y.Err = nil, nil
		return x == y
	}
	return reflect.DeepEqual(a, b)
}
