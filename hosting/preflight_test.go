package hosting

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/savedstate"
)

// hostStateWith is a host state of one guest whose device 0 carries
// channel (a channel state) and whose bus state is the golden one.
func hostStateWith(t *testing.T, channelState string) []byte {
	t.Helper()
	bus, err := os.ReadFile(goldenStates[3])
	if err != nil {
		t.Fatal(err)
	}
	ch, err := os.ReadFile(channelState)
	if err != nil {
		t.Fatal(err)
	}
	st := &hostState{Count: 1, Devices: []string{"echo"}, Guests: []*guestState{{Bus: bus, Channels: [][][]byte{{ch}}}}}
	b, err := st.encode("bus.sock")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPreflightRules: what a successor must read, and what the servicing
// refuses for or avoids.
func TestPreflightRules(t *testing.T) {
	if s := unreadable(savedstate.Supported(), true, false, false); s != "" {
		t.Errorf("this build does not read its own state: %s", s)
	}
	if s := unreadable(firstRelease, false, false, false); s != "" {
		t.Errorf("the first release cannot be serviced into: %s", s)
	}
	noGuest := savedstate.Support{Formats: []uint16{1}, Kinds: slices.DeleteFunc(slices.Clone(firstRelease.Kinds), func(k savedstate.Kind) bool { return k == kindHostGuest })}
	if s := unreadable(noGuest, false, false, false); !strings.Contains(s, "0x0201 host-guest") {
		t.Errorf("a successor without host-guest: %q", s)
	}
	if s := unreadable(savedstate.Support{Formats: []uint16{2}, Kinds: savedstate.Supported().Kinds}, false, false, false); s != "format 1" {
		t.Errorf("a successor of format 2 only: %q", s)
	}
	restart := hostStateWith(t, goldenStates[2])
	if err := checkReadable(restart, savedstate.Supported()); err != nil {
		t.Fatal(err)
	}
	err := checkReadable(restart, firstRelease)
	if err == nil || !strings.Contains(err.Error(), "0x0005 channel-restart") {
		t.Fatalf("a channel-restart record for the first release: %v", err)
	}
	if err := checkReadable(hostStateWith(t, goldenStates[1]), firstRelease); err != nil {
		t.Fatalf("a completion record for the first release: %v", err)
	}
	// A nested state that does not check is no state to hand over.
	bad := hostStateWith(t, goldenStates[0])
	st, err := parseHostState(bad, "bus.sock")
	if err != nil {
		t.Fatal(err)
	}
	st.Guests[0].Channels[0][0] = st.Guests[0].Channels[0][0][:100]
	if bad, err = st.encode("bus.sock"); err != nil {
		t.Fatal(err)
	}
	if err := checkReadable(bad, savedstate.Supported()); err == nil {
		t.Fatal("a cut channel state checked")
	}
	if !slices.Contains(avoidable, channel.KindChannelRestart) {
		t.Fatal("channel-restart is not avoidable")
	}
}

// TestProbeBinary asks binaries what they read: this build answers; one
// that exits without an answer (an older release: unknown flag), one
// that cannot start (errCannotRun: missing, not executable, not a
// program, a directory), and one that hangs give errors, the last a
// timeout.
func TestProbeBinary(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// This build's answer, as vmbus host --state-kinds prints it (that
	// the command prints it is cmd/vmbus's TestHostStateKinds).
	answer := filepath.Join(dir, "answer")
	if err := os.WriteFile(answer, savedstate.Supported().AppendText(nil, true), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := probeBinary(context.Background(), script("current", "cat "+answer))
	if err != nil || !slices.Equal(got.Kinds, savedstate.Supported().Kinds) {
		t.Fatalf("this build: %+v, %v", got, err)
	}
	older := script("older", `echo "vmbus: unknown flag: --state-kinds" >&2; exit 2`)
	if _, err := probeBinary(context.Background(), older); err == nil || errorsIsTimeout(err) {
		t.Fatalf("older release: %v", err)
	}
	partial := script("partial", `printf 'format 1\nkind 0x0001\n'`)
	if got, err := probeBinary(context.Background(), partial); err != nil || !slices.Equal(got.Kinds, []savedstate.Kind{1}) {
		t.Fatalf("partial: %+v, %v", got, err)
	}
	if _, err := probeBinary(context.Background(), older); errors.Is(err, errCannotRun) {
		t.Fatalf("older release taken for one that cannot run: %v", err)
	}
	// What cannot start at all: the exec would fail the same way.
	notExec := filepath.Join(dir, "notexec")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	notProgram := filepath.Join(dir, "notprogram")
	if err := os.WriteFile(notProgram, []byte("not a program\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{filepath.Join(dir, "missing"), notExec, notProgram, dir} {
		if _, err := probeBinary(context.Background(), bin); !errors.Is(err, errCannotRun) {
			t.Errorf("%s: %v, want errCannotRun", filepath.Base(bin), err)
		}
	}
	defer func(d time.Duration) { probeTimeout = d }(probeTimeout)
	probeTimeout = 200 * time.Millisecond
	if _, err := probeBinary(context.Background(), script("hangs", "exec sleep 30")); !errorsIsTimeout(err) {
		t.Fatalf("a binary that hangs: %v", err)
	}
}

func errorsIsTimeout(err error) bool { return errors.Is(err, errProbeTimeout) }

// stubDevice is a Device of a bare server channel: savesDeviceState only
// asks its channel.
type stubDevice struct{ ch *channel.Channel }

func (s stubDevice) Channel() *channel.Channel { return s.ch }
func (stubDevice) StopIndications()            {}
func (stubDevice) Pause() error                { return nil }
func (stubDevice) Save() ([][]byte, error)     { return nil, nil }
func (stubDevice) Start() error                { return nil }
func (stubDevice) StartHeld() error            { return nil }
func (stubDevice) Release()                    {}
func (stubDevice) Close() error                { return nil }

// TestPreflightDeviceState: a successor that reads everything but the
// channel-device record is refused exactly when a channel served has a
// save-state callback (an integration component), and let through when
// none has (echo, blk: their state never holds the record).
func TestPreflightDeviceState(t *testing.T) {
	noDevice := savedstate.Support{Formats: []uint16{savedstate.FormatVersion},
		Kinds: slices.DeleteFunc(slices.Clone(savedstate.Supported().Kinds), func(k savedstate.Kind) bool { return k == channel.KindChannelDevice })}
	if s := unreadable(noDevice, false, false, false); s != "" {
		t.Errorf("no channel with device state: refused for %q", s)
	}
	if s := unreadable(noDevice, true, false, false); s != "0x0006 channel-device" {
		t.Errorf("a channel with device state: %q, want 0x0006 channel-device", s)
	}

	plain, withState := channel.NewServer(), channel.NewServer()
	err := withState.Servicing().SetSaveStateCallbacks(
		func(*channel.Channel) ([]byte, error) { return []byte{1}, nil },
		func(*channel.Channel, []byte) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	devs := &devices{guests: make(map[*host.Guest][]Device)}
	devs.guests[&host.Guest{}] = []Device{stubDevice{plain}, nil}
	if devs.savesDeviceState() {
		t.Error("a plain channel counts as having device state")
	}
	// One guest at a time: a bare Guest has no id to sort by.
	devs.guests = map[*host.Guest][]Device{{}: {nil, stubDevice{withState}}}
	if !devs.savesDeviceState() {
		t.Error("a channel with a save-state callback does not count")
	}
}

// TestUnchangedImage: the binary this process runs is this build, and
// needs no probe; a copy of it at another path is another file, which
// might be another release, and is probed.
func TestUnchangedImage(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if !unchangedImage(exe) {
		t.Fatalf("%s, the running test binary, is not taken for itself", exe)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "copy")
	if err := os.WriteFile(cp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if unchangedImage(cp) {
		t.Fatal("a copy at another path is taken for the running binary")
	}
	if unchangedImage(filepath.Join(t.TempDir(), "missing")) {
		t.Fatal("a missing binary is taken for the running one")
	}
}

// TestPreflightTransferPages: a successor that reads everything but the
// channel-transfer-pages record is refused exactly when a channel served
// has a transfer page set, and let through when none has.
func TestPreflightTransferPages(t *testing.T) {
	noTP := savedstate.Support{Formats: []uint16{savedstate.FormatVersion},
		Kinds: slices.DeleteFunc(slices.Clone(savedstate.Supported().Kinds), func(k savedstate.Kind) bool { return k == channel.KindChannelTransferPages })}
	if s := unreadable(noTP, true, false, false); s != "" {
		t.Errorf("no channel with a transfer page set: refused for %q", s)
	}
	if s := unreadable(noTP, false, true, false); s != "0x0007 channel-transfer-pages" {
		t.Errorf("a channel with a transfer page set: %q, want 0x0007 channel-transfer-pages", s)
	}
}

// TestPreflightHVSockConns: a successor that reads everything but the
// host-hvsock-conn record is refused exactly when a relay has a
// connection open (its bytes would be lost), and let through when none
// has; the check of the finished state catches a connection that came
// after the pre-flight.
func TestPreflightHVSockConns(t *testing.T) {
	noConn := savedstate.Support{Formats: []uint16{savedstate.FormatVersion},
		Kinds: slices.DeleteFunc(slices.Clone(savedstate.Supported().Kinds), func(k savedstate.Kind) bool { return k == kindHostHVSockConn })}
	if s := unreadable(noConn, false, false, false); s != "" {
		t.Errorf("no connection: refused for %q", s)
	}
	if s := unreadable(noConn, false, false, true); s != "0x0204 host-hvsock-conn" {
		t.Errorf("a connection open: %q, want 0x0204 host-hvsock-conn", s)
	}
	state, err := os.ReadFile(filepath.Join("testdata", "golden", "host-hvsock-conn-v1.state"))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkReadable(state, noConn); err == nil || !strings.Contains(err.Error(), "0x0204 host-hvsock-conn") {
		t.Errorf("a state with a connection, for a successor that does not read it: %v", err)
	}
	if err := checkReadable(state, savedstate.Supported()); err != nil {
		t.Errorf("this build: %v", err)
	}
}
