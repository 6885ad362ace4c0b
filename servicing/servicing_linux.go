package servicing

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// EnvVar names the environment variable that carries a handover.
const EnvVar = "GOVMBUS_HANDOVER"

// MaxState bounds the saved state a successor reads.
const MaxState = 256 << 20

// Handover is what one host image passes to the next.
type Handover struct {
	// FDs are the descriptors to keep, by name. Names are the caller's
	// and must be non-empty without ',', '=' or ';'.
	//
	// For Exec they are borrowed: they stay the caller's, open, and Exec
	// clears their close-on-exec for the exec only, so that the very
	// descriptors the caller serves on (not duplicates) cross into the
	// new image. From Inherited they are the caller's to own and close,
	// close-on-exec, and not yet wrapped in an *os.File or checked for
	// what they are: that is for whoever adopts each one (os.NewFile,
	// or a package's adopting constructor), which also finds one that
	// is not open.
	FDs map[string]int
	// State is the saved state.
	State []byte
	// Paused is when the predecessor stopped serving.
	Paused time.Time
	// Note is passed on as it is by a spawned handover (Successor.Hand),
	// for the caller's own use; Exec does not carry it.
	Note string
	// Stop, if not nil, is looked at by Exec just before the exec: once
	// it is closed (a stop asked for), Exec gives up with ErrStopped and
	// the caller serves on, to stop in order. A stop caught by this image
	// any earlier would be lost with it.
	Stop <-chan struct{}
}

// ErrStopped is Exec's error when Handover.Stop was closed before the
// exec: nothing was handed over.
var ErrStopped = errors.New("servicing: stop asked for before the exec")

// ErrMalformed means the handover variable or state could not be trusted.
var ErrMalformed = errors.New("servicing: malformed handover")

// Exec replaces the running program with a new image of exe (the same
// binary, or an upgrade), passing h. It returns only on failure, and then
// every descriptor is as it was: close-on-exec is set again on those of
// h.FDs and the state memfd closed, so the caller can resume serving.
// h.FDs must be open and stay so until Exec returns; Exec does not close
// them.
func Exec(exe string, args []string, h Handover) error {
	if len(h.State) > MaxState {
		return fmt.Errorf("servicing: state of %d bytes exceeds %d", len(h.State), MaxState)
	}
	stateFD, err := stateMemfd(h.State)
	if err != nil {
		return err
	}
	defer unix.Close(stateFD)
	spec, fds, err := handoverSpec(h, stateFD)
	if err != nil {
		return err
	}
	if err := clearCloexec(fds); err != nil {
		return err
	}
	env := append(withoutVar(os.Environ()), EnvVar+"="+spec)
	// Without a keeper the exec only takes longer.
	k, kerr := startKeeper(0)
	if kerr == nil {
		env = append(env, keeperVar+"="+strconv.Itoa(k.pid))
	}
	select {
	case <-h.Stop:
		err = ErrStopped
	default:
		err = syscall.Exec(exe, args, env)
	}
	if k != nil {
		k.release()
	}
	restoreCloexec(fds)
	if err == ErrStopped {
		return err
	}
	return fmt.Errorf("servicing: exec %s: %w", exe, err)
}

// handoverSpec is the value of EnvVar for h with its state in stateFD,
// and every descriptor it names (stateFD first).
func handoverSpec(h Handover, stateFD int) (string, []int, error) {
	names := sortedNames(h.FDs)
	size := 64
	for _, name := range names {
		if name == "" || strings.ContainsAny(name, ",=;") || name == "state" || name == "paused" {
			return "", nil, fmt.Errorf("servicing: bad file name %q", name)
		}
		if fd := h.FDs[name]; fd < 0 {
			return "", nil, fmt.Errorf("servicing: %s: descriptor %d", name, fd)
		}
		size += len(name) + 12
	}
	b := make([]byte, 0, size)
	b = append(b, "v1;state="...)
	b = strconv.AppendInt(b, int64(stateFD), 10)
	b = append(b, ";paused="...)
	b = strconv.AppendInt(b, h.Paused.UnixNano(), 10)
	fds := make([]int, 1, 1+len(names))
	fds[0] = stateFD
	for _, name := range names {
		fd := h.FDs[name]
		b = append(b, ';')
		b = append(b, name...)
		b = append(b, '=')
		b = strconv.AppendInt(b, int64(fd), 10)
		fds = append(fds, fd)
	}
	return string(b), fds, nil
}

// sortedNames is the names of fds, sorted.
func sortedNames(fds map[string]int) []string {
	names := make([]string, 0, len(fds))
	for name := range fds {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// clearCloexec clears close-on-exec on fds, or on none of them (error).
func clearCloexec(fds []int) error {
	for i, fd := range fds {
		if err := setCloexec(fd, false); err != nil {
			restoreCloexec(fds[:i])
			return fmt.Errorf("servicing: clear close-on-exec of descriptor %d: %w", fd, err)
		}
	}
	return nil
}

func restoreCloexec(fds []int) {
	for _, fd := range fds {
		setCloexec(fd, true) //nolint:errcheck // an open descriptor takes it
	}
}

// setCloexec sets or clears fd's close-on-exec flag.
func setCloexec(fd int, on bool) error {
	flag := 0
	if on {
		flag = unix.FD_CLOEXEC
	}
	_, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, flag)
	return err
}

func withoutVar(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, EnvVar+"=") && !strings.HasPrefix(kv, keeperVar+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// stateMemfd puts the state in a sealed memfd the successor can only read.
func stateMemfd(state []byte) (int, error) {
	fd, err := unix.MemfdCreate("govmbus-handover", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, fmt.Errorf("servicing: memfd: %w", err)
	}
	for b := state; len(b) > 0; {
		n, err := unix.Write(fd, b)
		if err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("servicing: write state: %w", err)
		}
		b = b[n:]
	}
	seals := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("servicing: seal state: %w", err)
	}
	return fd, nil
}

// Inherited adopts a handover passed by a predecessor, if this process was
// started with one: ok is false when it was not. The variable is removed
// from the environment either way, so a later exec does not pass it on by
// mistake. On error every descriptor named in the handover is closed.
//
// The handover's descriptors come back as numbers in h.FDs (see
// Handover), close-on-exec again: Inherited sets it on the whole range
// from the lowest to the highest descriptor named, with one close_range
// system call where the kernel has CLOSE_RANGE_CLOEXEC (Linux 5.11), else
// one fcntl per descriptor. Besides the handover's own, that range holds
// only descriptors this image opened before Inherited (close-on-exec
// already, as Go opens every one) and any that whoever started the first
// image passed on without close-on-exec and that happen to lie among the
// predecessor's: those become close-on-exec too.
func Inherited() (h Handover, ok bool, err error) {
	reapKeeper()
	spec, present := os.LookupEnv(EnvVar)
	if !present {
		return Handover{}, false, nil
	}
	os.Unsetenv(EnvVar)
	fields := strings.Split(spec, ";")
	if len(fields) < 3 || fields[0] != "v1" {
		return Handover{}, true, fmt.Errorf("%w: %q", ErrMalformed, spec)
	}
	h.FDs = make(map[string]int, len(fields)-3)
	stateFD := -1
	fail := func(e error) (Handover, bool, error) {
		for _, fd := range h.FDs {
			unix.Close(fd)
		}
		if stateFD >= 0 {
			unix.Close(stateFD)
		}
		return Handover{}, true, e
	}
	seen := make(map[int]bool, len(fields))
	lo, hi := -1, -1
	for _, kv := range fields[1:] {
		name, val, found := strings.Cut(kv, "=")
		if !found || name == "" {
			return fail(fmt.Errorf("%w: field %q", ErrMalformed, kv))
		}
		if name == "paused" {
			ns, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return fail(fmt.Errorf("%w: paused %q", ErrMalformed, val))
			}
			h.Paused = time.Unix(0, ns)
			continue
		}
		fd, err := strconv.Atoi(val)
		if err != nil || fd < 3 || fd > maxFD || seen[fd] {
			return fail(fmt.Errorf("%w: descriptor %q for %s", ErrMalformed, val, name))
		}
		if _, dup := h.FDs[name]; dup || (name == "state" && stateFD >= 0) {
			return fail(fmt.Errorf("%w: %s named twice", ErrMalformed, name))
		}
		seen[fd] = true
		if name == "state" {
			stateFD = fd
		} else {
			h.FDs[name] = fd
		}
		if lo < 0 || fd < lo {
			lo = fd
		}
		hi = max(hi, fd)
	}
	if stateFD < 0 {
		return fail(fmt.Errorf("%w: no state", ErrMalformed))
	}
	// Close-on-exec again at once: these are ours now, and must not leak
	// into children.
	if err := cloexecRange(lo, hi, seen); err != nil {
		return fail(fmt.Errorf("%w: %v", ErrMalformed, err))
	}
	stateFile := os.NewFile(uintptr(stateFD), "state")
	stateFD = -1 // stateFile's
	defer stateFile.Close()
	st, err := stateFile.Stat()
	if err != nil || st.Size() > MaxState {
		return fail(fmt.Errorf("%w: state memfd unusable or over %d bytes", ErrMalformed, MaxState))
	}
	if _, err := stateFile.Seek(0, io.SeekStart); err != nil {
		return fail(fmt.Errorf("%w: %v", ErrMalformed, err))
	}
	// Sealed by the predecessor: the size is the state's.
	h.State = make([]byte, st.Size())
	if _, err := io.ReadFull(stateFile, h.State); err != nil {
		return fail(fmt.Errorf("%w: read state: %v", ErrMalformed, err))
	}
	return h, true, nil
}

// maxFD bounds a descriptor number in a handover (the kernel's own limit,
// fs.nr_open, is 2³⁰ at most).
const maxFD = 1 << 30

// cloexecRange sets close-on-exec on every descriptor from lo to hi, with
// one system call where the kernel can; else on each of fds, one by one,
// which also finds one that is not open.
func cloexecRange(lo, hi int, fds map[int]bool) error {
	err := unix.CloseRange(uint(lo), uint(hi), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	if err != unix.ENOSYS && err != unix.EINVAL {
		return fmt.Errorf("close_range: %w", err)
	}
	for fd := range fds {
		if err := setCloexec(fd, true); err != nil {
			return fmt.Errorf("descriptor %d: %w", fd, err)
		}
	}
	return nil
}
