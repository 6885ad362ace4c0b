package transport

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestAdoptEvent adopts an eventfd file as a successor would: no
// duplicate, the file is the Event's and closes with it; a file that is
// not an eventfd is refused and closed.
func TestAdoptEvent(t *testing.T) {
	checkLeaks(t)
	peer, err := NewEvent()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	f, err := peer.File()
	if err != nil {
		t.Fatal(err)
	}
	before := openFDs(t)
	e, err := AdoptEvent(f)
	if err != nil {
		t.Fatal(err)
	}
	if n := openFDs(t); n != before {
		t.Fatalf("%d descriptors open after AdoptEvent, %d before", n, before)
	}
	if err := peer.Signal(); err != nil {
		t.Fatal(err)
	}
	if err := e.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	// Wait is still cancellable: the adopted file is the poller's.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := e.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait: %v", err)
	}
	e.Close()
	if err := f.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("adopted file open after the Event's Close: %v", err)
	}

	// Refused, and closed.
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[1])
	pf := os.NewFile(uintptr(p[0]), "pipe")
	if _, err := AdoptEvent(pf); !errors.Is(err, ErrProtocol) {
		t.Fatalf("pipe adopted as an event: %v", err)
	}
	if err := pf.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("refused file left open: %v", err)
	}
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AdoptEvent(os.NewFile(uintptr(tfd), "timerfd")); !errors.Is(err, ErrProtocol) {
		t.Fatalf("timerfd adopted as an event: %v", err)
	}
}

// TestAdoptBlockingEvent adopts a file os.NewFile made of a blocking
// eventfd, which the poller does not wait on: the Event still gets one it
// can cancel a Wait on.
func TestAdoptBlockingEvent(t *testing.T) {
	checkLeaks(t)
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	e, err := AdoptEvent(os.NewFile(uintptr(fd), "eventfd"))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := e.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait: %v", err)
	}
	if err := e.Signal(); err != nil {
		t.Fatal(err)
	}
	if err := e.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// benchEventFiles makes files of eventfds as a successor inherits them.
func benchEventFiles(b *testing.B, n int) []*os.File {
	b.Helper()
	fs := make([]*os.File, n)
	for i := range fs {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			b.Fatal(err)
		}
		fs[i] = os.NewFile(uintptr(fd), "eventfd")
	}
	return fs
}

func BenchmarkEventFromFile(b *testing.B) {
	benchAdopt(b, func(f *os.File) (*Event, error) {
		e, err := EventFromFile(f)
		f.Close() // EventFromFile duplicated it
		return e, err
	})
}

func BenchmarkAdoptEvent(b *testing.B) { benchAdopt(b, AdoptEvent) }

// benchAdopt times adopt on 64 fresh eventfd files per iteration; making
// the files and closing the events is not timed.
func benchAdopt(b *testing.B, adopt func(*os.File) (*Event, error)) {
	b.ReportAllocs()
	for range b.N {
		b.StopTimer()
		fs := benchEventFiles(b, 64)
		b.StartTimer()
		for _, f := range fs {
			e, err := adopt(f)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			e.Close()
			b.StartTimer()
		}
	}
}

// TestFromFileRefusesOtherSockets: only a SOCK_SEQPACKET Unix socket is a
// connection.
func TestFromFileRefusesOtherSockets(t *testing.T) {
	checkLeaks(t)
	for _, typ := range []int{unix.SOCK_STREAM, unix.SOCK_DGRAM} {
		p, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(p[0]), "socket")
		if c, err := FromFile(f, Host); err == nil {
			c.Close()
			t.Fatalf("socket type %d accepted", typ)
		}
		f.Close()
		unix.Close(p[1])
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(p[0]), "pipe")
	if c, err := FromFile(f, Host); err == nil {
		c.Close()
		t.Fatal("pipe accepted")
	}
	f.Close()
	unix.Close(p[1])
}

// TestCheckEventWakesNoPoller: checking an eventfd wakes nobody who waits
// on it (the guest, for the event it waits on, during a servicing), and
// leaves its count alone.
func TestCheckEventWakesNoPoller(t *testing.T) {
	if !genericPollBits {
		t.Skip("the write probe decides on this architecture")
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ep)
	// As the Go runtime's poller registers a descriptor: edge-triggered,
	// reading and writing. Registering reports it writable once.
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(efd)}); err != nil {
		t.Fatal(err)
	}
	var evs [1]unix.EpollEvent
	unix.EpollWait(ep, evs[:], 0)
	if n, _ := unix.EpollWait(ep, evs[:], 0); n != 0 {
		t.Fatalf("%d events before the check", n)
	}
	if err := checkEvent(efd); err != nil {
		t.Fatal(err)
	}
	if n, _ := unix.EpollWait(ep, evs[:], 0); n != 0 {
		t.Fatal("the check woke a poller of the eventfd")
	}
	var buf [8]byte
	if _, err := unix.Read(efd, buf[:]); err != unix.EAGAIN {
		t.Fatalf("count changed by the check: read %v", err)
	}
}

// TestCheckEventEdges: an eventfd about to overflow (not writable) is
// still an eventfd; a timerfd that expired (readable) is not.
func TestCheckEventEdges(t *testing.T) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	full := [8]byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	if _, err := unix.Write(efd, full[:]); err != nil {
		t.Fatal(err)
	}
	if err := checkEvent(efd); err != nil {
		t.Fatalf("a full eventfd refused: %v", err)
	}
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(tfd)
	spec := unix.ItimerSpec{Value: unix.Timespec{Nsec: 1000}}
	if err := unix.TimerfdSettime(tfd, 0, &spec, nil); err != nil {
		t.Fatal(err)
	}
	pfd := []unix.PollFd{{Fd: int32(tfd), Events: unix.POLLIN}}
	if _, err := unix.Poll(pfd, 5000); err != nil || pfd[0].Revents&unix.POLLIN == 0 {
		t.Fatalf("timer did not expire: %v", err)
	}
	if err := checkEvent(tfd); !errors.Is(err, ErrProtocol) {
		t.Fatalf("an expired timerfd passed as an eventfd: %v", err)
	}
}
