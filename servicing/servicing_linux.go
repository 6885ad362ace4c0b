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
	// Files are the descriptors to keep, by name. Names are the caller's
	// and must be non-empty without ',', '=' or ';'.
	Files map[string]*os.File
	// State is the saved state.
	State []byte
	// Paused is when the predecessor stopped serving.
	Paused time.Time
}

// ErrMalformed means the handover variable or state could not be trusted.
var ErrMalformed = errors.New("servicing: malformed handover")

// Exec replaces the running program with a new image of exe (the same
// binary, or an upgrade), passing h. It returns only on failure, and then
// every descriptor is as it was: close-on-exec is restored and the state
// memfd closed, so the caller can resume serving.
func Exec(exe string, args []string, h Handover) error {
	if len(h.State) > MaxState {
		return fmt.Errorf("servicing: state of %d bytes exceeds %d", len(h.State), MaxState)
	}
	stateFD, err := stateMemfd(h.State)
	if err != nil {
		return err
	}
	defer unix.Close(stateFD)

	names := make([]string, 0, len(h.Files))
	for name := range h.Files {
		if name == "" || strings.ContainsAny(name, ",=;") {
			return fmt.Errorf("servicing: bad file name %q", name)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	var spec strings.Builder
	fmt.Fprintf(&spec, "v1;state=%d;paused=%d", stateFD, h.Paused.UnixNano())
	fds := []int{stateFD}
	for _, name := range names {
		fd, err := rawFD(h.Files[name])
		if err != nil {
			return fmt.Errorf("servicing: %s: %w", name, err)
		}
		fmt.Fprintf(&spec, ";%s=%d", name, fd)
		fds = append(fds, fd)
	}
	for _, fd := range fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			restoreCloexec(fds)
			return fmt.Errorf("servicing: clear close-on-exec: %w", err)
		}
	}
	env := append(withoutVar(os.Environ()), EnvVar+"="+spec.String())
	// Without a keeper the exec only takes longer.
	k, kerr := startKeeper()
	if kerr == nil {
		env = append(env, keeperVar+"="+strconv.Itoa(k.pid))
	}
	err = syscall.Exec(exe, args, env)
	if k != nil {
		k.release()
	}
	restoreCloexec(fds)
	return fmt.Errorf("servicing: exec %s: %w", exe, err)
}

// rawFD is f's descriptor. It does not use File.Fd, which would switch a
// non-blocking descriptor (shared with the live socket or eventfd it was
// duplicated from) to blocking mode.
func rawFD(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return -1, err
	}
	return fd, nil
}

func restoreCloexec(fds []int) {
	for _, fd := range fds {
		unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
	}
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
	h.Files = map[string]*os.File{}
	var stateFile *os.File
	fail := func(e error) (Handover, bool, error) {
		for _, f := range h.Files {
			f.Close()
		}
		if stateFile != nil {
			stateFile.Close()
		}
		return Handover{}, true, e
	}
	seen := map[int]bool{}
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
		if err != nil || fd < 3 || seen[fd] {
			return fail(fmt.Errorf("%w: descriptor %q for %s", ErrMalformed, val, name))
		}
		seen[fd] = true
		// Close-on-exec again at once: these are ours now, and must not
		// leak into children.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
			return fail(fmt.Errorf("%w: descriptor %d for %s: %v", ErrMalformed, fd, name, err))
		}
		f := os.NewFile(uintptr(fd), name)
		if name == "state" {
			stateFile = f
			continue
		}
		if _, dup := h.Files[name]; dup {
			f.Close()
			return fail(fmt.Errorf("%w: %s named twice", ErrMalformed, name))
		}
		h.Files[name] = f
	}
	if stateFile == nil {
		return fail(fmt.Errorf("%w: no state", ErrMalformed))
	}
	st, err := stateFile.Stat()
	if err != nil || st.Size() > MaxState {
		return fail(fmt.Errorf("%w: state memfd unusable or over %d bytes", ErrMalformed, MaxState))
	}
	if _, err := stateFile.Seek(0, io.SeekStart); err != nil {
		return fail(fmt.Errorf("%w: %v", ErrMalformed, err))
	}
	h.State, err = io.ReadAll(io.LimitReader(stateFile, MaxState))
	if err != nil {
		return fail(fmt.Errorf("%w: read state: %v", ErrMalformed, err))
	}
	stateFile.Close()
	return h, true, nil
}
