package child

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StopTimeout is how long Stop waits for a child to exit after SIGTERM
// before it kills the child's process group.
const StopTimeout = 10 * time.Second

// tailLines is how many stderr lines of a child an error quotes.
const tailLines = 8

// Process is one running child. Its stdout lines arrive on Lines, which
// is closed at EOF; Done is closed once the process has been waited for.
// Its methods are safe for concurrent use.
type Process struct {
	cmd   *exec.Cmd
	lines chan string   // stdout, closed at EOF
	done  chan struct{} // closed once the process has been waited for
	err   error         // Wait's, valid after done

	mu   sync.Mutex
	last []string // the last stderr lines
}

// Start starts bin with args. Each stderr line is passed to onStderr (if
// not nil) from the goroutine that reads stderr; the slice is valid only
// during the call, and a call that blocks holds up the child's stderr.
// The child is in its own process group, so that a terminal's Ctrl-C
// reaches the parent, which stops its children in order.
func Start(bin string, args []string, onStderr func(line []byte)) (*Process, error) {
	c := &Process{cmd: exec.Command(bin, args...), lines: make(chan string, 64), done: make(chan struct{})}
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	c.cmd.WaitDelay = time.Second
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %v", args[0], err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.mu.Lock()
			c.last = append(c.last, sc.Text())
			if len(c.last) > tailLines {
				c.last = c.last[1:]
			}
			c.mu.Unlock()
			if onStderr != nil {
				onStderr(sc.Bytes())
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		wg.Wait()
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// Lines is the child's stdout, one line at a time, closed at EOF. Whoever
// starts a child reads it, or the child blocks once 64 lines wait.
func (c *Process) Lines() <-chan string { return c.lines }

// Done is closed once the child has exited and been waited for.
func (c *Process) Done() <-chan struct{} { return c.done }

// Err is how the child ended (exec.Cmd.Wait's error); valid once Done is
// closed.
func (c *Process) Err() error { return c.err }

// Pid is the child's process id.
func (c *Process) Pid() int { return c.cmd.Process.Pid }

// Signal sends the child sig.
func (c *Process) Signal(sig syscall.Signal) error { return c.cmd.Process.Signal(sig) }

// Tail is the child's last stderr lines, for an error message: empty, or
// a newline and the lines, indented.
func (c *Process) Tail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.last) == 0 {
		return ""
	}
	return "\n  " + strings.Join(c.last, "\n  ")
}

// Stop waits up to grace for the child to exit by itself, then asks its
// process group to stop (SIGTERM), kills it after StopTimeout, and waits
// for the child. It reports the exit code (-1 if killed by a signal) and,
// when not 0, why, with its last stderr lines. Whatever stdout still
// holds is read and dropped.
func (c *Process) Stop(grace time.Duration) (int, string) {
	// Drain what the stdout reader may still hold, so it never blocks.
	go func() {
		for range c.lines {
		}
	}()
	if grace > 0 {
		t := time.NewTimer(grace)
		select {
		case <-c.done:
		case <-t.C:
		}
		t.Stop()
	}
	select {
	case <-c.done:
	default:
		pid := c.cmd.Process.Pid
		syscall.Kill(-pid, syscall.SIGTERM)
		t := time.NewTimer(StopTimeout)
		select {
		case <-c.done:
		case <-t.C:
			syscall.Kill(-pid, syscall.SIGKILL)
			<-c.done
		}
		t.Stop()
	}
	code := c.cmd.ProcessState.ExitCode()
	if code == 0 {
		return 0, ""
	}
	return code, fmt.Sprintf("exit: %v%s", c.err, c.Tail())
}
