package hosting

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/savedstate"
	"github.com/govmbus/govmbus/servicing"
)

// A servicing's pre-flight: before it pauses anything, the host learns
// what the successor reads of saved states (docs/SAVED_STATE.md,
// Compatibility), so that it never hands over a state the successor must
// refuse. Such a refusal leaves nobody serving the guests' devices: the
// successor offers them anew, and what was in flight is lost.

// firstRelease is what a successor that cannot say what it reads is taken
// to read: the record kinds of the first release that serviced a host
// (7572855, format 1), which every release since reads. Kind 0x0005
// (channel-restart) came later, in 084e832, which predates the answer
// (`vmbus host --state-kinds`), so a release without the answer may
// refuse it.
var firstRelease = savedstate.Support{
	Formats: []uint16{1},
	Kinds: []savedstate.Kind{
		channel.KindChannelInfo, channel.KindChannelMappings, channel.KindChannelPacket, channel.KindChannelCompletion,
		host.KindBusConnection, host.KindBusChannel, host.KindBusGpadl,
		kindHostInfo, kindHostGuest, kindHostBusChunk, kindHostChannelChunk,
	},
}

// probeTimeout bounds the run of the successor's binary that asks what it
// reads; it answers at once, so the bound is for a binary that hangs. A
// variable for tests.
var probeTimeout = 10 * time.Second

// maxProbeOutput bounds what the probe keeps of the binary's output.
const maxProbeOutput = 64 << 10

// errProbeTimeout is a probe whose binary did not exit in time.
var errProbeTimeout = errors.New("no answer in time")

// errCannotRun is a probe whose binary could not be started at all:
// missing (deleted, not replaced), not executable, not a program.
var errCannotRun = errors.New("the binary cannot run")

// probeBinary asks the binary at exe what it reads (`exe host
// --state-kinds`), waiting at most probeTimeout. It returns
// errProbeTimeout for a binary that did not exit in time, errCannotRun
// for one that could not be started, and another error for one that
// exited without an answer it can parse (an older release, which does
// not know the flag). A parent
// context that ends first ends the probe too, with its error.
func probeBinary(parent context.Context, exe string) (savedstate.Support, error) {
	ctx, cancel := context.WithTimeout(parent, probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, ProbeArgs...)
	// Nothing of a handover or a supervisor: the probe is no host.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GOVMBUS_") })
	out := &limitedBuffer{max: maxProbeOutput}
	cmd.Stdout = out
	cmd.WaitDelay = time.Second // a child that keeps stdout open does not hold the wait
	err := cmd.Run()
	if err := parent.Err(); err != nil {
		return savedstate.Support{}, err
	}
	if ctx.Err() != nil {
		return savedstate.Support{}, fmt.Errorf("%w: %s, within %v", errProbeTimeout, exe, probeTimeout)
	}
	var start *fs.PathError // os.StartProcess's: nothing ran
	if errors.As(err, &start) && start.Op == "fork/exec" {
		return savedstate.Support{}, fmt.Errorf("%w: %v", errCannotRun, start.Err)
	}
	if err != nil {
		return savedstate.Support{}, err
	}
	if out.over {
		return savedstate.Support{}, fmt.Errorf("more than %d bytes of answer", maxProbeOutput)
	}
	return savedstate.ParseSupport(out.b.Bytes())
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	b    bytes.Buffer
	max  int
	over bool
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if n := l.max - l.b.Len(); len(p) > n {
		l.b.Write(p[:max(n, 0)])
		l.over = true
		return len(p), nil
	}
	return l.b.Write(p)
}

// successorReads is the pre-flight: what the successor reads, by its
// answer (a spawned successor's ready note, or the binary this process
// execs), or firstRelease where it gives none; a successor in this
// process (to) reads what this build reads, if it serves the same. It
// returns how it knows, for the log, and an error only when the
// servicing must not go on.
func (d *Daemon) successorReads(ctx context.Context, succ *servicing.Successor, to *Daemon) (savedstate.Support, string, error) {
	if to != nil {
		if to.cfg.Socket != d.cfg.Socket {
			return savedstate.Support{}, "", fmt.Errorf("the successor serves %q, this host %q", to.cfg.Socket, d.cfg.Socket)
		}
		return savedstate.Supported(), "in process", nil
	}
	if succ != nil {
		if note := succ.ReadyNote(); len(note) > 0 {
			if s, err := savedstate.ParseSupport(note); err == nil {
				return s, "answer", nil
			}
		}
		return firstRelease, "no answer: taken as the first release", nil
	}
	exe, err := os.Executable()
	if err != nil {
		return savedstate.Support{}, "", err
	}
	if unchangedImage(exe) {
		return savedstate.Supported(), "this build (its binary is unchanged)", nil
	}
	s, err := probeBinary(ctx, exe)
	switch {
	case err == nil:
		return s, "answer", nil
	case errors.Is(err, errProbeTimeout):
		// A binary that hangs at its start would hang the exec too.
		return savedstate.Support{}, "", err
	case errors.Is(err, errCannotRun):
		// The exec would fail the same way, after the pause: refused
		// now, the guests see no blackout for it.
		return savedstate.Support{}, "", fmt.Errorf("%s: %w", exe, err)
	default:
		// An older release exits 2 on the flag it does not know.
		return firstRelease, fmt.Sprintf("no answer (%v): taken as the first release", err), nil
	}
}

// unchangedImage reports whether exe is still the file this process runs:
// then the exec starts this build, and no probe is needed (a probe starts
// a process, tens of milliseconds before every pause under load). A
// running binary cannot be rewritten in place (ETXTBSY), so a new release
// at the path is a new file, and the same file is the same build.
func unchangedImage(exe string) bool {
	path, err := os.Stat(exe)
	if err != nil {
		return false
	}
	self, err := os.Stat("/proc/self/exe")
	return err == nil && os.SameFile(path, self)
}

// avoidable are the kinds a servicing can keep out of its state for a
// successor that does not read them, and how: a Pause that waits for
// restartable packets saves no channel-restart record; a channel-device
// record is written only by a channel with a save-state callback (the
// integration components), so a host none of whose channels has one
// writes none; a channel-transfer-pages record only by a channel with a
// transfer page set (a guest announced a receive buffer). The state is
// still checked against the successor's kinds before it is handed over,
// which catches a set announced between the pre-flight and the pause:
// that servicing fails and the host serves on. A host-hvsock-offer record
// is written only for a successor that reads it: for another, the offers
// are left to its rescind, as before there was the record; so is a
// host-guest-id record: another numbers the guests anew.
var avoidable = []savedstate.Kind{channel.KindChannelRestart, channel.KindChannelDevice, channel.KindChannelTransferPages, kindHostHVSockConn, kindHostHVSockOffer, kindHostGuestID}

// unreadable returns what of this build's state the successor (reads)
// cannot read and the servicing cannot avoid: a format version or kinds.
// deviceState says whether any channel about to be saved has state of its
// device's own (channel.ServicingView.SavesDeviceState): its record is then
// no longer avoidable; transferPages whether any has a transfer page set
// (channel.ServicingView.HasTransferPageSets); conns whether a relay has
// a connection to carry. Empty means the servicing may go on: a
// successor that cannot take the connections back is refused, rather
// than handed a state without them, which would lose their bytes.
func unreadable(reads savedstate.Support, deviceState, transferPages, conns bool) string {
	if !reads.ReadsFormat(savedstate.FormatVersion) {
		return fmt.Sprintf("format %d", savedstate.FormatVersion)
	}
	var missing []string
	for _, k := range reads.Missing(savedstate.Supported().Kinds) {
		if !slices.Contains(avoidable, k) || (k == channel.KindChannelDevice && deviceState) || (k == channel.KindChannelTransferPages && transferPages) || (k == kindHostHVSockConn && conns) {
			missing = append(missing, fmt.Sprintf("%#04x %s", uint16(k), savedstate.KindName(k)))
		}
	}
	return strings.Join(missing, ", ")
}

// kindList is kinds for a log line: "0x0001 channel-info, ...".
func kindList(kinds []savedstate.Kind) string {
	s := make([]string, len(kinds))
	for i, k := range kinds {
		s[i] = fmt.Sprintf("%#04x %s", uint16(k), savedstate.KindName(k))
	}
	return strings.Join(s, ", ")
}

// checkReadable fails if state uses a kind that reads lacks.
func checkReadable(state []byte, reads savedstate.Support) error {
	_, used, err := StateUses(state)
	if err != nil {
		return err
	}
	if m := reads.Missing(used); len(m) > 0 {
		return fmt.Errorf("the state holds %s, which the successor does not read", kindList(m))
	}
	return nil
}
