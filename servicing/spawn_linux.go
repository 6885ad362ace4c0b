package servicing

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// SuccessorVar names the environment variable that tells a spawned
// successor (Spawn) the descriptor of its socket to the predecessor.
const SuccessorVar = "GOVMBUS_SUCCESSOR"

// ErrSuccessorGone means the other image of a spawned handover ended, or
// closed its socket, before it said what this one is waiting for.
var ErrSuccessorGone = errors.New("servicing: the successor is gone")

// errTimeout is a wait on the other image that ran out of time.
var errTimeout = errors.New("servicing: timed out waiting for the other image")

// maxHandFDs bounds the descriptors of one spawned handover (a host has
// 64 guests of at most a few hundred descriptors each).
const maxHandFDs = 1 << 16

// fdsPerMessage is how many descriptors one message carries: the kernel
// takes at most 253 (SCM_MAX_FD).
const fdsPerMessage = 250

// What the images say to each other over the spawn socket, one message
// each: the successor's progress, and the predecessor's descriptors.
const (
	msgReady    = 'R' // successor: started, waiting for the handover
	msgFDs      = 'F' // predecessor: a batch of descriptors
	msgReceived = 'A' // successor: has the handover, the guests are its own
	msgFailed   = 'E' // successor: failed before it took them; text follows
)

// handMagic opens the memfd of a spawned handover.
var handMagic = [4]byte{'G', 'V', 'H', 'O'}

// Successor is a new image of the program, started by Spawn beside the
// running one and waiting for its handover. The spawned handover is the
// alternative to Exec: the new image's start-up (runtime, packages,
// flags, devices) happens while the old one still serves, so that only the
// pause, the save, the handover and the restore remain in the blackout.
// The new image has a process id of its own.
type Successor struct {
	proc *os.Process
	sock int
	note []byte // what it said with its ready message
}

// MaxReadyNote bounds what a successor says with its ready message
// (Predecessor.ReadyWith).
const MaxReadyNote = 4096

// Spawn starts exe with args and env as a successor, with stdin, stdout
// and stderr this process's and extra as descriptors 3 and on, and returns
// once it runs (not once it is ready: WaitReady). The successor's socket
// comes after extra; env must not name SuccessorVar, which Spawn adds.
func Spawn(exe string, args, env []string, extra ...*os.File) (*Successor, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("servicing: socketpair: %w", err)
	}
	child := os.NewFile(uintptr(fds[1]), "successor")
	files := append([]*os.File{os.Stdin, os.Stdout, os.Stderr}, extra...)
	env = append(env[:len(env):len(env)], SuccessorVar+"="+strconv.Itoa(len(files)))
	proc, err := os.StartProcess(exe, args, &os.ProcAttr{
		Env:   env,
		Files: append(files, child),
	})
	child.Close()
	if err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("servicing: start %s: %w", exe, err)
	}
	return &Successor{proc: proc, sock: fds[0]}, nil
}

// Pid is the successor's process id.
func (s *Successor) Pid() int { return s.proc.Pid }

// WaitReady waits up to timeout for the successor to be ready for its
// handover. What the successor said with it is ReadyNote then.
func (s *Successor) WaitReady(timeout time.Duration) error {
	return s.WaitReadyContext(context.Background(), timeout)
}

// WaitReadyContext is WaitReady that gives up, with ctx's error, once ctx
// is done: a servicing asked to stop while a successor starts slowly.
func (s *Successor) WaitReadyContext(ctx context.Context, timeout time.Duration) error {
	text, err := s.expect(ctx, msgReady, "ready", timeout)
	if err == nil {
		s.note = []byte(text)
	}
	return err
}

// ReadyNote is what the successor said with its ready message
// (Predecessor.ReadyWith), at most MaxReadyNote bytes, untrusted; empty if
// it said nothing, as a release that predates the note does.
func (s *Successor) ReadyNote() []byte { return s.note }

// expect waits up to timeout for the successor to say want, and returns
// the text that came with it.
func (s *Successor) expect(ctx context.Context, want byte, name string, timeout time.Duration) (string, error) {
	kind, text, err := recvMsg(ctx, s.sock, timeout)
	switch {
	case err != nil:
		return "", err
	case kind == msgFailed:
		return "", fmt.Errorf("servicing: the successor failed: %s", text)
	case kind != want:
		return "", fmt.Errorf("servicing: the successor said %q, not %s", kind, name)
	}
	return text, nil
}

// Hand passes h to the successor. The descriptors of h.FDs are sent as
// they are (the kernel gives the successor its own), and stay the
// caller's, which must read none of them any more; the state goes in a
// sealed memfd.
func (s *Successor) Hand(h Handover) error {
	if len(h.State) > MaxState {
		return fmt.Errorf("servicing: state of %d bytes exceeds %d", len(h.State), MaxState)
	}
	if len(h.FDs)+1 > maxHandFDs {
		return fmt.Errorf("servicing: %d descriptors exceed %d", len(h.FDs), maxHandFDs-1)
	}
	body, fds, err := handBody(h)
	if err != nil {
		return err
	}
	memfd, err := stateMemfd(body)
	if err != nil {
		return err
	}
	defer unix.Close(memfd)
	fds = append([]int{memfd}, fds...)
	var hdr [9]byte
	hdr[0] = msgFDs
	binary.LittleEndian.PutUint32(hdr[1:], uint32(len(fds)))
	for i := 0; i < len(fds); i += fdsPerMessage {
		batch := fds[i:min(i+fdsPerMessage, len(fds))]
		binary.LittleEndian.PutUint32(hdr[5:], uint32(i))
		if err := unix.Sendmsg(s.sock, hdr[:], unix.UnixRights(batch...), nil, 0); err != nil {
			return fmt.Errorf("servicing: send descriptors: %w", err)
		}
	}
	return nil
}

// WaitReceived waits up to timeout for the successor to take the
// handover over; from then on the guests are the successor's. The caller
// must have stopped reading the descriptors it handed over before Hand (a
// read of an eventfd or a socket would take what the successor waits
// for): the successor lets packets flow as soon as it has restored them.
func (s *Successor) WaitReceived(timeout time.Duration) error {
	_, err := s.expect(context.Background(), msgReceived, "received", timeout)
	return err
}

// Abort ends a successor that is not to serve: it is killed and reaped.
// A second Abort does nothing.
func (s *Successor) Abort() {
	if s.sock < 0 {
		return
	}
	unix.Close(s.sock)
	s.sock = -1
	s.proc.Kill() //nolint:errcheck // one that exited already is fine
	s.proc.Wait() //nolint:errcheck // reaped either way
}

// handBody lays out h (but its descriptors) for the memfd, and lists the
// descriptors in the order the body names them: magic, version (1),
// paused (Unix nanoseconds), note, names, state; integers little-endian,
// strings and the state with a 32-bit length first.
func handBody(h Handover) ([]byte, []int, error) {
	names := sortedNames(h.FDs)
	size := 4 + 4 + 8 + 4 + len(h.Note) + 4 + 4 + len(h.State)
	fds := make([]int, 0, len(names))
	for _, name := range names {
		if name == "" || len(name) > 255 {
			return nil, nil, fmt.Errorf("servicing: bad file name %q", name)
		}
		if h.FDs[name] < 0 {
			return nil, nil, fmt.Errorf("servicing: %s: descriptor %d", name, h.FDs[name])
		}
		size += 4 + len(name)
		fds = append(fds, h.FDs[name])
	}
	b := make([]byte, 0, size)
	b = append(b, handMagic[:]...)
	b = binary.LittleEndian.AppendUint32(b, 1)
	b = binary.LittleEndian.AppendUint64(b, uint64(h.Paused.UnixNano()))
	b = appendString(b, h.Note)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(names)))
	for _, name := range names {
		b = appendString(b, name)
	}
	b = appendString(b, string(h.State))
	return b, fds, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// recvMsg receives one progress message (no descriptors), waiting up to
// timeout or until ctx is done.
func recvMsg(ctx context.Context, sock int, timeout time.Duration) (byte, string, error) {
	if err := waitReadable(ctx, sock, timeout); err != nil {
		return 0, "", err
	}
	var buf [1 + MaxReadyNote]byte
	for {
		n, _, flags, _, err := unix.Recvmsg(sock, buf[:], nil, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, "", fmt.Errorf("servicing: receive: %w", err)
		}
		if n == 0 {
			return 0, "", ErrSuccessorGone
		}
		if flags&unix.MSG_TRUNC != 0 {
			return 0, "", fmt.Errorf("%w: a message of more than %d bytes", ErrMalformed, len(buf))
		}
		return buf[0], string(buf[1:n]), nil
	}
}

// ctxPoll is how long waitReadable polls at a time with a context that
// can end: how late it sees the end.
const ctxPoll = 20 * time.Millisecond

// waitReadable waits up to timeout for sock to be readable or closed, or
// until ctx is done (its error).
func waitReadable(ctx context.Context, sock int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return errTimeout
		}
		if ctx.Done() != nil {
			left = min(left, ctxPoll)
		}
		pfd := []unix.PollFd{{Fd: int32(sock), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, int(min(left.Milliseconds()+1, 1<<30)))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("servicing: poll: %w", err)
		}
		if n > 0 {
			return nil
		}
	}
}

// Predecessor is a spawned successor's side of the spawn socket.
type Predecessor struct {
	sock int
}

// Spawned reports whether this process was started by Spawn and, if so,
// returns its side of the socket. The variable is removed from the
// environment either way.
func Spawned() (*Predecessor, bool, error) {
	v, ok := os.LookupEnv(SuccessorVar)
	if !ok {
		return nil, false, nil
	}
	os.Unsetenv(SuccessorVar)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 || fd > maxFD {
		return nil, true, fmt.Errorf("%w: %s=%q", ErrMalformed, SuccessorVar, v)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, true, fmt.Errorf("%w: descriptor %d is not a socket", ErrMalformed, fd)
	}
	unix.CloseOnExec(fd)
	return &Predecessor{sock: fd}, true, nil
}

// Ready tells the predecessor that this image waits for its handover.
func (p *Predecessor) Ready() error { return p.send(msgReady, "") }

// ReadyWith is Ready, saying note with it (at most MaxReadyNote bytes):
// what the predecessor should know of this image before it pauses, such
// as which saved states it reads. A predecessor that predates the note
// takes the message as a plain Ready.
func (p *Predecessor) ReadyWith(note []byte) error {
	if len(note) > MaxReadyNote {
		return fmt.Errorf("servicing: a ready note of %d bytes exceeds %d", len(note), MaxReadyNote)
	}
	return p.send(msgReady, string(note))
}

// Received tells the predecessor that this image has taken its handover
// over (the predecessor exits then), and closes the socket.
func (p *Predecessor) Received() error {
	defer unix.Close(p.sock)
	return p.send(msgReceived, "")
}

// Fail tells the predecessor that this image cannot take the handover
// over, instead of Received: the guests stay the predecessor's. It closes
// the socket.
func (p *Predecessor) Fail(err error) {
	defer unix.Close(p.sock)
	msg := err.Error()
	if len(msg) > 500 {
		msg = msg[:500]
	}
	p.send(msgFailed, msg) //nolint:errcheck // a predecessor gone learns nothing
}

func (p *Predecessor) send(kind byte, text string) error {
	b := append([]byte{kind}, text...)
	for {
		err := unix.Sendmsg(p.sock, b, nil, nil, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("servicing: tell the predecessor: %w", err)
		}
		return nil
	}
}

// Receive waits for the handover and adopts it as Inherited does: the
// descriptors come back by name, close-on-exec, the caller's to own. On
// error every descriptor received is closed. It fails with
// ErrSuccessorGone's kin if the predecessor gives up (closes the socket)
// before handing over.
func (p *Predecessor) Receive() (Handover, error) {
	var got []int
	fail := func(err error) (Handover, error) {
		for _, fd := range got {
			unix.Close(fd)
		}
		return Handover{}, err
	}
	var hdr [16]byte
	oob := make([]byte, unix.CmsgSpace(253*4))
	total := -1
	for total < 0 || len(got) < total {
		n, oobn, flags, _, err := unix.Recvmsg(p.sock, hdr[:], oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fail(fmt.Errorf("servicing: receive the handover: %w", err))
		}
		before := len(got)
		if oobn > 0 {
			fds, perr := parseRights(oob[:oobn])
			got = append(got, fds...)
			if perr != nil {
				return fail(perr)
			}
		}
		if n == 0 {
			return fail(errors.New("servicing: the predecessor gave up before its handover"))
		}
		if flags&(unix.MSG_CTRUNC|unix.MSG_TRUNC) != 0 || n != 9 || hdr[0] != msgFDs {
			return fail(fmt.Errorf("%w: message of %d bytes, flags %#x", ErrMalformed, n, flags))
		}
		t := int(binary.LittleEndian.Uint32(hdr[1:]))
		first := int(binary.LittleEndian.Uint32(hdr[5:]))
		if (total >= 0 && t != total) || t < 1 || t > maxHandFDs || first != before {
			return fail(fmt.Errorf("%w: descriptors %d of %d out of order", ErrMalformed, first, t))
		}
		total = t
		if len(got) > total {
			return fail(fmt.Errorf("%w: more than %d descriptors", ErrMalformed, total))
		}
	}
	h, err := parseHandBody(got[0], got[1:])
	if err != nil {
		return fail(err)
	}
	unix.Close(got[0])
	return h, nil
}

// parseRights returns the descriptors of the SCM_RIGHTS messages in oob.
func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("%w: control message: %v", ErrMalformed, err)
	}
	var fds []int
	for _, m := range msgs {
		r, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		fds = append(fds, r...)
	}
	return fds, nil
}

// parseHandBody reads the memfd of a spawned handover and names fds by it.
func parseHandBody(memfd int, fds []int) (Handover, error) {
	var st unix.Stat_t
	if err := unix.Fstat(memfd, &st); err != nil {
		return Handover{}, fmt.Errorf("%w: state memfd: %v", ErrMalformed, err)
	}
	if st.Size < 0 || st.Size > MaxState+maxHandFDs*260+1024 {
		return Handover{}, fmt.Errorf("%w: state memfd of %d bytes", ErrMalformed, st.Size)
	}
	b := make([]byte, st.Size)
	for off := 0; off < len(b); {
		n, err := unix.Pread(memfd, b[off:], int64(off))
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return Handover{}, fmt.Errorf("%w: read state memfd: %v", ErrMalformed, err)
		}
		off += n
	}
	h, names, err := decodeHandBody(b, len(fds))
	if err != nil {
		return Handover{}, err
	}
	h.FDs = make(map[string]int, len(names))
	for i, name := range names {
		h.FDs[name] = fds[i]
	}
	return h, nil
}

// decodeHandBody decodes what handBody laid out, for nfds descriptors:
// the handover but its descriptors, and their names in order.
func decodeHandBody(b []byte, nfds int) (Handover, []string, error) {
	r := reader{b: b}
	var magic [4]byte
	copy(magic[:], r.bytes(4))
	if magic != handMagic || r.u32() != 1 {
		return Handover{}, nil, fmt.Errorf("%w: not a version 1 handover", ErrMalformed)
	}
	h := Handover{Paused: time.Unix(0, int64(r.u64()))}
	h.Note = string(r.str())
	n := int(r.u32())
	if r.bad || n != nfds || n > maxHandFDs {
		return Handover{}, nil, fmt.Errorf("%w: %d names for %d descriptors", ErrMalformed, n, nfds)
	}
	names := make([]string, 0, n)
	seen := make(map[string]bool, n)
	for range n {
		name := string(r.str())
		if seen[name] || name == "" || r.bad {
			return Handover{}, nil, fmt.Errorf("%w: name %q", ErrMalformed, name)
		}
		seen[name] = true
		names = append(names, name)
	}
	h.State = r.str()
	if r.bad || len(r.b) != 0 || len(h.State) > MaxState {
		return Handover{}, nil, fmt.Errorf("%w: state", ErrMalformed)
	}
	return h, names, nil
}

// reader takes little-endian fields off b; past its end it sets bad and
// returns zeros.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || n > len(r.b) {
		r.bad = true
		r.b = nil
		return make([]byte, min(max(n, 0), 8)) // enough for u32 and u64

	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u32() uint32 { return binary.LittleEndian.Uint32(r.bytes(4)) }
func (r *reader) u64() uint64 { return binary.LittleEndian.Uint64(r.bytes(8)) }
func (r *reader) str() []byte { return r.bytes(int(r.u32())) }

// ExitKeepingAddressSpace exits this process with code after a spawned
// handover, leaving the teardown of its address space to a keeper (see
// Exec) that waits delay first: the successor is restoring meanwhile, on
// the same CPUs.
func ExitKeepingAddressSpace(code int, delay time.Duration) {
	startKeeper(delay) //nolint:errcheck // without one the exit only takes longer
	os.Exit(code)
}
