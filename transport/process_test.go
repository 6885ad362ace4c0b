package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guestmem"
)

// childEnv selects the role a re-executed test binary plays.
const childEnv = "GOVMBUS_TRANSPORT_CHILD"

// startChild re-executes the test binary as TestChildProcess in the given
// role and waits until it prints "ready".
func startChild(t *testing.T, role, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildProcess$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+role, "GOVMBUS_TRANSPORT_SOCKET="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if sc.Text() == "ready" {
			go func() {
				for sc.Scan() {
				}
			}()
			return cmd
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatal("child exited before it was ready")
	return nil
}

// TestChildProcess is the other process of the tests below; it does
// nothing unless started by them.
func TestChildProcess(t *testing.T) {
	role := os.Getenv(childEnv)
	if role == "" {
		t.Skip("only run as a child process")
	}
	if err := runChild(role, os.Getenv("GOVMBUS_TRANSPORT_SOCKET")); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runChild(role, path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	switch role {
	case "host":
		// Serve one guest: check its memory, answer its signal.
		l, err := Listen(path)
		if err != nil {
			return err
		}
		defer l.Close()
		fmt.Println("ready")
		c, err := l.Accept()
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, MaxMessageSize)
		n, err := c.Recv(ctx, buf)
		if err != nil {
			return err
		}
		if string(buf[:n]) != "open channel 1" {
			return fmt.Errorf("got %q", buf[:n])
		}
		m, err := c.TakeMemory()
		if err != nil {
			return err
		}
		defer m.Close()
		if b, _ := m.View(3*guestmem.PageSize, 13); string(b) != "parent's page" {
			return fmt.Errorf("memory reads %q", b)
		}
		toHost, err := c.TakeEvent(1, ToHost)
		if err != nil {
			return err
		}
		defer toHost.Close()
		toGuest, err := c.TakeEvent(1, ToGuest)
		if err != nil {
			return err
		}
		defer toGuest.Close()
		for i := 0; i < 50; i++ {
			if err := toHost.Wait(ctx); err != nil {
				return fmt.Errorf("wait %d: %w", i, err)
			}
			copy(m.Bytes()[5*guestmem.PageSize:], fmt.Sprintf("reply %02d", i))
			if err := toGuest.Signal(); err != nil {
				return err
			}
		}
		if err := c.Send([]byte("done")); err != nil {
			return err
		}
		if _, err := c.Recv(ctx, buf); !errors.Is(err, ErrPeerClosed) {
			return fmt.Errorf("after done: %v", err)
		}
		return nil
	case "idle-guest":
		// Connect and wait to be killed.
		c, err := Dial(ctx, path)
		if err != nil {
			return err
		}
		defer c.Close()
		fmt.Println("ready")
		time.Sleep(time.Minute)
		return nil
	}
	return fmt.Errorf("unknown role %q", role)
}

// TestTwoProcesses runs the guest here and the host in a child process:
// memory, events and messages cross a real process boundary.
func TestTwoProcesses(t *testing.T) {
	checkLeaks(t)
	path := filepath.Join(t.TempDir(), "vmbus.sock")
	cmd := startChild(t, "host", path)
	defer cmd.Wait()

	m, err := guestmem.New(8 * guestmem.PageSize)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	copy(m.Bytes()[3*guestmem.PageSize:], "parent's page")
	c, err := Dial(testCtx(t), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	toHost, _ := NewEvent()
	defer toHost.Close()
	toGuest, _ := NewEvent()
	defer toGuest.Close()
	if err := c.SendMemory(m); err != nil {
		t.Fatal(err)
	}
	if err := c.SendEvent(1, ToHost, toHost); err != nil {
		t.Fatal(err)
	}
	if err := c.SendEvent(1, ToGuest, toGuest); err != nil {
		t.Fatal(err)
	}
	send(t, c, "open channel 1")
	ctx := testCtx(t)
	for i := 0; i < 50; i++ {
		toHost.Signal()
		if err := toGuest.Wait(ctx); err != nil {
			t.Fatalf("wait %d: %v", i, err)
		}
		want := fmt.Sprintf("reply %02d", i)
		if got := m.Bytes()[5*guestmem.PageSize:][:len(want)]; !bytes.Equal(got, []byte(want)) {
			t.Fatalf("child wrote %q, want %q", got, want)
		}
	}
	if got := recvString(t, c); got != "done" {
		t.Fatalf("got %q", got)
	}
	c.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
}

// TestPeerKilled: a guest process dies mid-connection; the host's blocked
// Recv reports ErrPeerClosed.
func TestPeerKilled(t *testing.T) {
	checkLeaks(t)
	path := filepath.Join(t.TempDir(), "vmbus.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	cmd := startChild(t, "idle-guest", path)
	c := <-accepted
	if c == nil {
		return
	}
	defer c.Close()
	done := make(chan error)
	go func() {
		_, err := c.Recv(context.Background(), make([]byte, MaxMessageSize))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	select {
	case err := <-done:
		if !errors.Is(err, ErrPeerClosed) {
			t.Fatalf("Recv: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Recv still blocked after the guest died")
	}
}
