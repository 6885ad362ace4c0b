package ringbench

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govmbus/govmbus/ring"
)

// The two-process round trip (Config.EchoCommand): the two rings live in
// one memfd, out first, back second; the echo process gets the memfd and
// both eventfds as descriptors 3, 4 (its own: toEcho) and 5 (toClient),
// says "ready" on its standard output once it has mapped them, and exits
// 0 after answering Config.Count packets.

// regionSize is one ring's bytes: control page and data.
func regionSize(c Config) int { return ring.ControlSize + c.RingSize }

// mapShared maps n bytes of fd shared.
func mapShared(fd, n int) ([]byte, error) {
	b, err := unix.Mmap(fd, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	return b, nil
}

// runRoundTripProcesses is runRoundTrip with the echo side in a process
// of its own, started with c.EchoCommand.
func runRoundTripProcesses(c Config) (res Result, err error) {
	fd, err := unix.MemfdCreate("ringbench", unix.MFD_CLOEXEC)
	if err != nil {
		return Result{}, fmt.Errorf("memfd: %w", err)
	}
	mem := os.NewFile(uintptr(fd), "ringbench-memfd")
	defer mem.Close()
	size := 2 * regionSize(c)
	if err := mem.Truncate(int64(size)); err != nil {
		return Result{}, err
	}
	m, err := mapShared(fd, size)
	if err != nil {
		return Result{}, err
	}
	defer unix.Munmap(m) //nolint:errcheck // nothing to do about it
	// The echo process makes its own writer and reader on these.
	outW, _, err := formatRing(m[:regionSize(c)])
	if err != nil {
		return Result{}, err
	}
	_, backR, err := formatRing(m[regionSize(c):])
	if err != nil {
		return Result{}, err
	}
	toClient, err := newNotifier()
	if err != nil {
		return Result{}, err
	}
	defer toClient.Close()
	toEcho, err := newNotifier()
	if err != nil {
		return Result{}, err
	}
	defer toEcho.Close()

	// The child gets copies; the notifiers keep their own descriptors.
	var events []*os.File
	for _, n := range []*notifier{toEcho, toClient} {
		d, err := unix.Dup(n.fd)
		if err != nil {
			return Result{}, fmt.Errorf("dup: %w", err)
		}
		f := os.NewFile(uintptr(d), "eventfd")
		defer f.Close()
		events = append(events, f)
	}
	cmd := exec.Command(c.EchoCommand[0], c.EchoCommand[1:]...)
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{mem, events[0], events[1]}
	// An echo process left behind would spin for ever, holding the
	// measuring process's stdout.
	cmd.SysProcAttr = &unix.SysProcAttr{Pdeathsig: unix.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return Result{}, err
	}
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("echo process: %w", err)
	}
	defer func() {
		if err != nil {
			cmd.Process.Kill() //nolint:errcheck // it may have exited
		}
		if werr := cmd.Wait(); werr != nil && err == nil {
			err = fmt.Errorf("echo process: %w", werr)
		}
	}()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != "ready" {
		return Result{}, errors.New("echo process did not start")
	}
	start := time.Now()
	sum, signals, err := clientSide(c, outW, backR, toClient, toEcho)
	if err != nil {
		return Result{}, err
	}
	// The echo process counts its own signals.
	return result(c, time.Since(start), sum, signals), nil
}

// RunEchoProcess is the echo process of a two-process round trip: c is
// the client's configuration (without EchoCommand); the memfd and the
// eventfds are descriptors 3, 4 and 5; ready is called once they are
// mapped.
func RunEchoProcess(c Config, ready func()) error {
	if err := c.Validate(); err != nil {
		return err
	}
	st, err := os.NewFile(3, "memfd").Stat()
	if err != nil {
		return fmt.Errorf("descriptor 3: %w", err)
	}
	if st.Size() != int64(2*regionSize(c)) {
		return fmt.Errorf("memory of %d bytes, want %d", st.Size(), 2*regionSize(c))
	}
	m, err := mapShared(3, 2*regionSize(c))
	if err != nil {
		return err
	}
	defer unix.Munmap(m) //nolint:errcheck // the process ends
	outR, err := ring.NewReader(m[:regionSize(c)])
	if err != nil {
		return err
	}
	backW, err := ring.NewWriter(m[regionSize(c):])
	if err != nil {
		return err
	}
	toEcho, toClient := &notifier{fd: 4}, &notifier{fd: 5}
	ready()
	var signals int64
	return echoSide(c, outR, backW, toClient, toEcho, &signals)
}
