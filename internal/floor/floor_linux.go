// Package floor measures what this machine allows a cross-process round
// trip at best, for `vmbus bench floor` and for the ratios of `vmbus guest
// ping --floor`: a latency is only meaningful next to the floor measured
// in the same run on the same machine (a shared machine's absolute
// figures move by tens of per cent from one minute to the next).
//
// Four floors, each a ping-pong between this process and a peer process
// (Config.PeerCommand, which runs ServePeer):
//   - eventfd: each side blocks in read(2) on its eventfd and wakes the
//     other with write(2) — the wake-up every VMBus signal costs when the
//     reader sleeps;
//   - poller: the same ping-pong between two goroutines, each reading a
//     non-blocking eventfd through Go's runtime poller (os.File.Read), as
//     every goroutine that sleeps on an event does, channels' receive
//     goroutines among them — what a wake-up costs a Go program, the
//     scheduler's hand-offs included;
//   - raw poller: the poller ping-pong, its reads and writes made with
//     RawSyscall, which the runtime does not see. A system call the
//     runtime sees (entersyscall) wakes its sysmon thread when every P
//     was idle, as each side of a ping-pong is while it waits: two more
//     thread wake-ups (the wake and sysmon's next 20 µs sleep) per side
//     and round trip. This floor is the poller's without them. It is a
//     measure, not a way to signal a peer: a raw write to an eventfd
//     that a peer made blocking, and filled, would hold its P and stop
//     the world's next stop;
//   - spin: each side spins on a counter in shared memory and answers by
//     storing to another — what a round trip costs when neither sleeps,
//     the bound for a polling mode.
package floor

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxCount bounds Config.Count: each floor keeps every round trip's time.
const MaxCount = 10_000_000

// Config is one floor measurement.
type Config struct {
	// Count is the round trips measured per floor, after Warmup more.
	Count, Warmup int
	// PeerCommand starts the peer process: a program that calls
	// ServePeer with the descriptors 3 (shared memory), 4 (its eventfd),
	// 5 (this side's eventfd), and 6 and 7 (the same two, non-blocking,
	// for the poller floors).
	PeerCommand []string
}

// Latency is one floor's round trips.
type Latency struct {
	// Count is the round trips measured.
	Count int `json:"count"`
	// P50 and P99 are percentiles of one round trip.
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	// CPUPerRoundTrip is this side's CPU time (user and system) per
	// round trip: its thread's, and for the poller floor every thread of
	// this process (the goroutine moves between them, and the runtime's
	// own threads wake for it). The spin floor costs a core while it
	// waits.
	CPUPerRoundTrip time.Duration `json:"cpu_per_round_trip_ns"`
}

// Result is the four floors, measured one after the other.
type Result struct {
	Eventfd   Latency `json:"eventfd"`
	Poller    Latency `json:"poller"`
	RawPoller Latency `json:"raw_poller"`
	Spin      Latency `json:"spin"`
}

// WriteText prints r, count round trips each, as `vmbus bench floor` does.
func (r Result) WriteText(w io.Writer, count int) {
	fmt.Fprintf(w, "round-trip floor, %d round trips each:\n", count)
	for _, f := range []struct {
		name string
		l    Latency
	}{{"eventfd", r.Eventfd}, {"poller", r.Poller}, {"raw poller", r.RawPoller}, {"spin", r.Spin}} {
		fmt.Fprintf(w, "  %-10s p50 %8.2f µs  p99 %8.2f µs  cpu/rt %8.2f µs\n", f.name,
			float64(f.l.P50.Nanoseconds())/1e3, float64(f.l.P99.Nanoseconds())/1e3, float64(f.l.CPUPerRoundTrip.Nanoseconds())/1e3)
	}
}

// Mode bytes the measuring side stores for the peer in the shared page.
const (
	modeEventfd = 1
	modeSpin    = 2
	modeExit    = 3
	modePoller  = 4
	modeRaw     = 5
)

// The shared page: each word on a cache line of its own, so that the two
// spinning sides do not share one.
const (
	offMode  = 0   // what the peer does next
	offPing  = 64  // the measuring side's counter
	offPong  = 128 // the peer's answer
	pageSize = 4096
)

// Measure runs the four floors against a peer started with c.PeerCommand.
func Measure(c Config) (Result, error) {
	if c.Count <= 0 || c.Count > MaxCount || c.Warmup < 0 || len(c.PeerCommand) == 0 {
		return Result{}, fmt.Errorf("floor: want 0 < Count <= %d, Warmup >= 0 and a peer command", MaxCount)
	}
	memfd, err := unix.MemfdCreate("floor", unix.MFD_CLOEXEC)
	if err != nil {
		return Result{}, fmt.Errorf("floor: memfd: %w", err)
	}
	mem := os.NewFile(uintptr(memfd), "floor-memfd")
	defer mem.Close()
	if err := mem.Truncate(pageSize); err != nil {
		return Result{}, fmt.Errorf("floor: %w", err)
	}
	page, err := unix.Mmap(memfd, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return Result{}, fmt.Errorf("floor: mmap: %w", err)
	}
	defer unix.Munmap(page) //nolint:errcheck // nothing to do about it
	toPeer, err := eventfd()
	if err != nil {
		return Result{}, err
	}
	defer toPeer.Close()
	toUs, err := eventfd()
	if err != nil {
		return Result{}, err
	}
	defer toUs.Close()
	pollPeer, err := pollEventfd()
	if err != nil {
		return Result{}, err
	}
	defer pollPeer.Close()
	pollUs, err := pollEventfd()
	if err != nil {
		return Result{}, err
	}
	defer pollUs.Close()

	cmd := exec.Command(c.PeerCommand[0], c.PeerCommand[1:]...)
	cmd.ExtraFiles = []*os.File{mem, toPeer, toUs, pollPeer, pollUs}
	// A peer left behind would spin or wait for ever, holding the
	// measuring process's stdout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return Result{}, err
	}
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("floor: start the peer: %w", err)
	}
	w := words(page)
	defer func() {
		// The peer leaves once told, whatever it waits on.
		atomic.StoreUint64(w.mode, modeExit)
		signal(int(toPeer.Fd()))
		pollPeer.Write(one[:]) //nolint:errcheck // as signal's
		cmd.Wait()             //nolint:errcheck // told to exit; its errors were said on stderr
	}()
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "ready" {
		return Result{}, fmt.Errorf("floor: the peer did not start: %q", sc.Text())
	}
	// One thread each way: a goroutine that moved between threads would
	// measure the scheduler too.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	peer, us := int(toPeer.Fd()), int(toUs.Fd())
	var res Result
	atomic.StoreUint64(w.mode, modeEventfd)
	if res.Eventfd, err = run(c, threadCPU, func(uint64) error {
		signal(peer)
		return wait(us)
	}); err != nil {
		return Result{}, err
	}
	// The peer waits on its eventfd: woken, it finds the new mode.
	atomic.StoreUint64(w.mode, modePoller)
	signal(peer)
	// Goroutines, free to move between threads as a Go program's are.
	runtime.UnlockOSThread()
	var buf [8]byte
	res.Poller, err = run(c, processCPU, func(uint64) error {
		if _, err := pollPeer.Write(one[:]); err != nil {
			return fmt.Errorf("floor: eventfd write: %w", err)
		}
		if _, err := pollUs.Read(buf[:]); err != nil {
			return fmt.Errorf("floor: eventfd read: %w", err)
		}
		return nil
	})
	if err != nil {
		runtime.LockOSThread()
		return Result{}, err
	}
	// The peer reads its poller eventfd: woken, it finds the new mode.
	atomic.StoreUint64(w.mode, modeRaw)
	pollPeer.Write(one[:]) //nolint:errcheck // as signal's
	rawPeer, rawUs, err := rawConns(pollPeer, pollUs)
	if err == nil {
		// The peer says it reads raw now: a ping written before would
		// coalesce with the mode's signal into one count.
		err = rawWait(rawUs)
	}
	if err == nil {
		res.RawPoller, err = run(c, processCPU, func(uint64) error {
			rawSignal(rawPeer)
			return rawWait(rawUs)
		})
	}
	runtime.LockOSThread()
	if err != nil {
		return Result{}, err
	}
	atomic.StoreUint64(w.mode, modeSpin)
	pollPeer.Write(one[:]) //nolint:errcheck // as signal's
	if res.Spin, err = run(c, threadCPU, func(i uint64) error {
		atomic.StoreUint64(w.ping, i)
		for atomic.LoadUint64(w.pong) != i {
		}
		return nil
	}); err != nil {
		return Result{}, err
	}
	return res, nil
}

// run times Warmup+Count round trips of rt, numbered from 1.
func run(c Config, cpuNow func() time.Duration, rt func(i uint64) error) (Latency, error) {
	lat := make([]time.Duration, c.Count)
	cpu0 := cpuNow()
	for i := 1; i <= c.Warmup+c.Count; i++ {
		start := time.Now()
		if err := rt(uint64(i)); err != nil {
			return Latency{}, err
		}
		if k := i - c.Warmup - 1; k >= 0 {
			lat[k] = time.Since(start)
		}
	}
	cpu := (cpuNow() - cpu0) / time.Duration(c.Warmup+c.Count)
	slices.Sort(lat)
	return Latency{Count: c.Count, P50: lat[len(lat)/2], P99: lat[len(lat)*99/100], CPUPerRoundTrip: cpu}, nil
}

// threadCPU is the CPU time of the calling thread, to the nanosecond
// (getrusage counts in scheduler ticks on some kernels: a few hundred
// microsecond-long round trips could read as none).
func threadCPU() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) //nolint:errcheck // a valid clock id
	return time.Duration(ts.Nano())
}

// processCPU is the CPU time of every thread of this process.
func processCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru) //nolint:errcheck // a valid who
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ServePeer is the peer process of Measure: it maps descriptor 3, answers
// on 5 what comes on 4 or through the shared page, as the measuring side
// says in the page, and returns when told to exit. ready is called once
// it is set up (the peer says so on its standard output).
func ServePeer(ready func()) error {
	page, err := unix.Mmap(3, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("floor: mmap: %w", err)
	}
	defer unix.Munmap(page) //nolint:errcheck // exiting
	const fromUs, toUs = 4, 5
	w := words(page)
	// The poller floor's descriptors, made files once: a second *os.File
	// of a descriptor would close it when collected.
	pollIn, pollOut := os.NewFile(6, "poll-in"), os.NewFile(7, "poll-out")
	defer pollIn.Close()
	defer pollOut.Close()
	runtime.LockOSThread()
	ready()
	for {
		switch atomic.LoadUint64(w.mode) {
		case modeExit:
			return nil
		case modeSpin:
			// Answer each ping; a mode change ends the spin.
			last := atomic.LoadUint64(w.pong)
			for atomic.LoadUint64(w.mode) == modeSpin {
				if p := atomic.LoadUint64(w.ping); p != last {
					atomic.StoreUint64(w.pong, p)
					last = p
				}
			}
		default:
			if err := wait(fromUs); err != nil {
				return err
			}
			switch atomic.LoadUint64(w.mode) {
			case modeEventfd:
				signal(toUs)
			case modePoller:
				if err := servePoller(w, pollIn, pollOut); err != nil {
					return err
				}
				if atomic.LoadUint64(w.mode) == modeRaw {
					if err := serveRaw(w, pollIn, pollOut); err != nil {
						return err
					}
				}
			}
		}
	}
}

// servePoller answers the poller floor's pings that come on in, on out,
// until the mode changes. It runs unlocked from its thread, as the
// measuring side's goroutine does.
func servePoller(w shared, in, out *os.File) error {
	runtime.UnlockOSThread()
	defer runtime.LockOSThread()
	var buf [8]byte
	for {
		if _, err := in.Read(buf[:]); err != nil {
			return fmt.Errorf("floor: eventfd read: %w", err)
		}
		if atomic.LoadUint64(w.mode) != modePoller {
			return nil
		}
		if _, err := out.Write(one[:]); err != nil {
			return fmt.Errorf("floor: eventfd write: %w", err)
		}
	}
}

// serveRaw answers the raw poller floor's pings as servePoller does the
// poller's, with RawSyscall reads and writes, until the mode changes.
func serveRaw(w shared, in, out *os.File) error {
	runtime.UnlockOSThread()
	defer runtime.LockOSThread()
	rin, rout, err := rawConns(in, out)
	if err != nil {
		return err
	}
	rawSignal(rout) // Measure's go-ahead
	for {
		if err := rawWait(rin); err != nil {
			return err
		}
		if atomic.LoadUint64(w.mode) != modeRaw {
			return nil
		}
		rawSignal(rout)
	}
}

// rawConns is a and b's syscall.RawConn.
func rawConns(a, b *os.File) (syscall.RawConn, syscall.RawConn, error) {
	ra, err := a.SyscallConn()
	if err != nil {
		return nil, nil, fmt.Errorf("floor: %w", err)
	}
	rb, err := b.SyscallConn()
	if err != nil {
		return nil, nil, fmt.Errorf("floor: %w", err)
	}
	return ra, rb, nil
}

// rawSignal adds one to the counter of rc, a non-blocking eventfd, by a
// raw write(2): the floor's eventfds are its own, and stay non-blocking.
func rawSignal(rc syscall.RawConn) {
	rc.Write(rawWrite) //nolint:errcheck // an open file's
}

func rawWrite(fd uintptr) bool {
	unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&one[0])), uintptr(len(one))) //nolint:errcheck // as signal's
	return true
}

// rawWait takes the counter of rc, a non-blocking eventfd, by raw
// read(2)s, waiting in the runtime poller while it is zero.
func rawWait(rc syscall.RawConn) error {
	var errno syscall.Errno
	if err := rc.Read(func(fd uintptr) bool {
		var b [8]byte
		_, _, errno = unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		return errno != unix.EAGAIN && errno != unix.EINTR
	}); err != nil {
		return fmt.Errorf("floor: eventfd read: %w", err)
	}
	if errno != 0 {
		return fmt.Errorf("floor: eventfd read: %w", errno)
	}
	return nil
}

// shared is the shared page's words.
type shared struct{ mode, ping, pong *uint64 }

func words(page []byte) shared {
	return shared{
		mode: (*uint64)(unsafe.Pointer(&page[offMode])),
		ping: (*uint64)(unsafe.Pointer(&page[offPing])),
		pong: (*uint64)(unsafe.Pointer(&page[offPong])),
	}
}

func eventfd() (*os.File, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("floor: eventfd: %w", err)
	}
	return os.NewFile(uintptr(fd), "eventfd"), nil
}

// pollEventfd is a non-blocking eventfd, which os.NewFile registers with
// the runtime poller.
func pollEventfd() (*os.File, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("floor: eventfd: %w", err)
	}
	return os.NewFile(uintptr(fd), "eventfd"), nil
}

// one is an eventfd increment.
var one = [8]byte{1}

// signal adds one to eventfd fd's counter.
func signal(fd int) {
	unix.Write(fd, one[:]) //nolint:errcheck // a full counter needs 2^64 signals
}

// wait blocks until eventfd fd's counter is not zero, and takes it.
func wait(fd int) error {
	var b [8]byte
	for {
		_, err := unix.Read(fd, b[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("floor: eventfd read: %w", err)
		}
		return nil
	}
}
