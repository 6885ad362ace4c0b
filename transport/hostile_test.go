package transport

import (
	"errors"
	"net"
	"os"
	"testing"

	"github.com/govmbus/govmbus/guestmem"
	"golang.org/x/sys/unix"
)

// rawPeer returns a host Conn whose guest end is a bare socket the test
// writes arbitrary datagrams to.
func rawPeer(t *testing.T) (*Conn, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[0]), "host")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	c := newConn(nc.(*net.UnixConn), Host, false)
	t.Cleanup(func() { c.Close(); unix.Close(fds[1]) })
	return c, fds[1]
}

func sendRaw(t *testing.T, sock int, b []byte, fds ...int) {
	t.Helper()
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if err := unix.Sendmsg(sock, b, oob, nil, 0); err != nil {
		t.Fatal(err)
	}
}

var guestHello = appendFrame(nil, frame{kind: kindHello, role: Guest, version: helloVersion})

// sent collects the descriptors a test made to send: the test's own
// copies, which it closes once they are in flight.
var sent []int

func newEventFD(t *testing.T) int {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	sent = append(sent, fd)
	return fd
}

func unsealedMemfd(t *testing.T) int {
	fd, err := unix.MemfdCreate("x", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	unix.Ftruncate(fd, 4096)
	sent = append(sent, fd)
	return fd
}

func TestHostileFrames(t *testing.T) {
	memFrame := func(size uint64) []byte { return appendFrame(nil, frame{kind: kindMemory, size: size}) }
	evFrame := appendFrame(nil, frame{kind: kindEvent, channel: 1, dir: ToHost})
	for _, tc := range []struct {
		name string
		send func(t *testing.T, sock int) // runs after the hello unless skip
		want error
		skip bool // no hello first
		held int  // descriptors the Conn rightly keeps (adopted before the bad frame)
	}{
		{name: "message before hello", skip: true, want: ErrProtocol,
			send: func(t *testing.T, s int) { sendRaw(t, s, []byte{2, 0, 1, 0, 9}) }},
		{name: "host role hello", skip: true, want: ErrProtocol,
			send: func(t *testing.T, s int) {
				sendRaw(t, s, appendFrame(nil, frame{kind: kindHello, role: Host, version: 1}))
			}},
		{name: "version 2", skip: true, want: ErrVersion,
			send: func(t *testing.T, s int) {
				sendRaw(t, s, appendFrame(nil, frame{kind: kindHello, role: Guest, version: 2}))
			}},
		{name: "second hello", want: ErrProtocol,
			send: func(t *testing.T, s int) { sendRaw(t, s, guestHello) }},
		{name: "unknown kind", want: ErrProtocol,
			send: func(t *testing.T, s int) { sendRaw(t, s, []byte{42, 0, 0, 0}) }},
		{name: "oversized datagram", want: ErrProtocol,
			send: func(t *testing.T, s int) { sendRaw(t, s, append([]byte{2, 0, 0xFC, 3}, make([]byte, 1020)...)) }},
		{name: "message with a descriptor", want: ErrProtocol,
			send: func(t *testing.T, s int) { sendRaw(t, s, []byte{2, 0, 1, 0, 9}, newEventFD(t)) }},
		{name: "event with three descriptors", want: ErrProtocol,
			send: func(t *testing.T, s int) { sendRaw(t, s, evFrame, newEventFD(t), newEventFD(t), newEventFD(t)) }},
		{name: "ten descriptors", want: ErrProtocol,
			send: func(t *testing.T, s int) {
				var fds []int
				for i := 0; i < 10; i++ {
					fds = append(fds, newEventFD(t))
				}
				sendRaw(t, s, evFrame, fds...)
			}},
		{name: "event is a pipe", want: ErrProtocol,
			send: func(t *testing.T, s int) {
				var p [2]int
				unix.Pipe2(p[:], unix.O_CLOEXEC)
				sent = append(sent, p[0], p[1])
				sendRaw(t, s, evFrame, p[0])
			}},
		{name: "event is a socket", want: ErrProtocol,
			send: func(t *testing.T, s int) {
				p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					t.Fatal(err)
				}
				sent = append(sent, p[0], p[1])
				sendRaw(t, s, evFrame, p[0])
			}},
		// Files on the kernel's shared anonymous inode, as eventfds are.
		{name: "event is a timerfd", want: ErrProtocol,
			send: func(t *testing.T, s int) {
				fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC)
				if err != nil {
					t.Fatal(err)
				}
				sent = append(sent, fd)
				sendRaw(t, s, evFrame, fd)
			}},
		{name: "event is an epoll descriptor", want: ErrProtocol,
			send: func(t *testing.T, s int) {
				fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
				if err != nil {
					t.Fatal(err)
				}
				sent = append(sent, fd)
				sendRaw(t, s, evFrame, fd)
			}},
		{name: "event is a memfd", want: ErrProtocol,
			send: func(t *testing.T, s int) {
				fd := unsealedMemfd(t)
				sendRaw(t, s, evFrame, fd)
			}},
		{name: "unsealed memory", want: guestmem.ErrNotSealed,
			send: func(t *testing.T, s int) { sendRaw(t, s, memFrame(4096), unsealedMemfd(t)) }},
		{name: "memory is an eventfd", want: ErrProtocol,
			send: func(t *testing.T, s int) { sendRaw(t, s, memFrame(4096), newEventFD(t)) }},
		{name: "memory size mismatch", want: ErrProtocol,
			send: func(t *testing.T, s int) {
				m, _ := guestmem.New(2 * 4096)
				f, _ := m.File()
				m.Close()
				sendRaw(t, s, memFrame(4096), int(f.Fd()))
				f.Close()
			}},
		{name: "memory twice", want: ErrProtocol, held: 1,
			send: func(t *testing.T, s int) {
				m, _ := guestmem.New(4096)
				f, _ := m.File()
				m.Close()
				sendRaw(t, s, memFrame(4096), int(f.Fd()))
				sendRaw(t, s, memFrame(4096), int(f.Fd()))
				f.Close()
			}},
		{name: "short datagram with a descriptor", want: ErrProtocol,
			send: func(t *testing.T, s int) { sendRaw(t, s, []byte{4}, newEventFD(t)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			c, sock := rawPeer(t)
			if !tc.skip {
				sendRaw(t, sock, guestHello)
			}
			before := openFDs(t)
			tc.send(t, sock)
			// The sender's copies are ours to close: a descriptor in
			// flight holds its file open on the receiving side only.
			for _, fd := range sent {
				unix.Close(fd)
			}
			sent = nil
			_, err := c.Recv(testCtx(t), make([]byte, MaxMessageSize))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Recv: %v, want %v", err, tc.want)
			}
			var fe *FrameError
			if !errors.As(err, &fe) {
				t.Fatalf("%v is not a *FrameError", err)
			}
			// Sticky.
			if _, err2 := c.Recv(testCtx(t), nil); !errors.Is(err2, tc.want) {
				t.Fatalf("second Recv: %v", err2)
			}
			if n := openFDs(t); n != before+tc.held {
				t.Fatalf("%d descriptors open after the bad frame, %d before", n, before)
			}
		})
	}
}

func TestTooManyPendingEvents(t *testing.T) {
	checkLeaks(t)
	c, sock := rawPeer(t)
	sendRaw(t, sock, guestHello)
	fd := newEventFD(t)
	sent = nil
	defer unix.Close(fd)
	unix.SetNonblock(sock, false)
	done := make(chan struct{})
	defer func() { c.Close(); <-done }()
	go func() {
		defer close(done)
		for ch := uint32(0); ch <= maxPendingEvents; ch++ {
			if unix.Sendmsg(sock, appendFrame(nil, frame{kind: kindEvent, channel: ch, dir: ToGuest}), unix.UnixRights(fd), nil, 0) != nil {
				return
			}
		}
	}()
	_, err := c.Recv(testCtx(t), nil)
	if !errors.Is(err, ErrProtocol) {
		t.Fatalf("Recv: %v", err)
	}
}
