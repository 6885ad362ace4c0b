package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// localServer is a Unix-socket server of the test process, what a relay
// connects to. With a nil sum it echoes: it sends back what it reads and
// half-closes at its EOF; otherwise it reads to the EOF and then answers
// with the digest (hex) of what it read, a new sum's.
func localServer(t testing.TB, path string, sum func() hash.Hash) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				uc := c.(*net.UnixConn)
				if sum == nil {
					io.Copy(uc, uc)
					uc.CloseWrite()
					return
				}
				h := sum()
				// 64 KiB reads, as the relay writes and as
				// BenchmarkUnixStream's peer reads.
				io.CopyBuffer(h, struct{ io.Reader }{uc}, make([]byte, 64<<10))
				io.WriteString(uc, hex.EncodeToString(h.Sum(nil)))
			})
		}
	})
}

// startRelayHost runs `vmbus host` with args (its --hvsock-relay flags)
// and waits for its socket.
func startRelayHost(t testing.TB, dir string, args ...string) string {
	t.Helper()
	socket, _, _ := startRelayHostProcess(t, dir, args...)
	return socket
}

// startRelayHostProcess is startRelayHost that also gives the process
// and its log.
func startRelayHostProcess(t testing.TB, dir string, args ...string) (string, *exec.Cmd, *lockedBuffer) {
	t.Helper()
	socket := filepath.Join(dir, "bus.sock")
	cmd := exec.Command(vmbusBinary(t), append([]string{"host", "--socket", socket}, args...)...)
	logs := new(lockedBuffer)
	cmd.Stderr = logs
	cmd.WaitDelay = logEndTimeout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("host exit: %v\n%s", err, logs.String())
		}
	})
	waitFor(t, "the host's socket", func() bool {
		_, err := os.Stat(socket)
		return err == nil
	})
	return socket, cmd, logs
}

// hvsockDial runs `vmbus guest hvsock dial service` with in as its
// stdin; it returns stdout, stderr and the exit status.
func hvsockDial(t *testing.T, socket, service string, in io.Reader) ([]byte, string, int) {
	t.Helper()
	cmd := exec.Command(vmbusBinary(t), "guest", "--socket", socket, "hvsock", "dial", service)
	cmd.Stdin = in
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return stdout.Bytes(), stderr.String(), exitCode(err)
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("hvsock dial %s did not end; %d bytes out: %s", service, stdout.Len(), stderr.String())
	}
	return nil, "", 0
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestE2EHVSockRelayEcho: a few MiB through dial, the relay and a local
// echo server come back whole, and dial exits 0 once both directions
// have ended (its stdin's end passed on as the echo's end).
func TestE2EHVSockRelayEcho(t *testing.T) {
	dir := t.TempDir()
	localServer(t, filepath.Join(dir, "echo.sock"), nil)
	socket := startRelayHost(t, dir, "--hvsock-relay", "5000=unix:"+filepath.Join(dir, "echo.sock"))
	data := randomBytes(t, 4<<20)
	out, stderr, code := hvsockDial(t, socket, "5000", bytes.NewReader(data))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if sha256.Sum256(out) != sha256.Sum256(data) {
		t.Fatalf("echoed %d bytes of %d, SHA-256 %x, want %x", len(out), len(data), sha256.Sum256(out), sha256.Sum256(data))
	}
}

// TestE2EHVSockHalfClose: the local server answers only after the
// guest's stdin has ended, by the relay's CloseWrite; the answer still
// arrives on the half-closed connection, and names exactly what was sent.
func TestE2EHVSockHalfClose(t *testing.T) {
	dir := t.TempDir()
	localServer(t, filepath.Join(dir, "sum.sock"), sha256.New)
	socket := startRelayHost(t, dir, "--hvsock-relay", "5001=unix:"+filepath.Join(dir, "sum.sock"))
	data := randomBytes(t, 3<<20+17)
	out, stderr, code := hvsockDial(t, socket, "5001", bytes.NewReader(data))
	sum := sha256.Sum256(data)
	if code != 0 || string(out) != hex.EncodeToString(sum[:]) {
		t.Fatalf("exit %d, answer %q, want %x: %s", code, out, sum, stderr)
	}
}

// TestE2EHVSockRefusedAndClosed: a service with no relay is refused (exit
// 1, the reason on stderr), and a relay whose local socket is not there
// closes the guest's connection: nothing comes back and dial ends.
func TestE2EHVSockRefusedAndClosed(t *testing.T) {
	dir := t.TempDir()
	socket := startRelayHost(t, dir, "--hvsock-relay", "5002=unix:"+filepath.Join(dir, "absent.sock"))
	_, stderr, code := hvsockDial(t, socket, "5003", strings.NewReader("x"))
	if code != 1 || !strings.Contains(stderr, "refused") {
		t.Errorf("no relay: exit %d, %q; want 1, refused", code, stderr)
	}
	out, stderr, code := hvsockDial(t, socket, "5002", strings.NewReader("x"))
	if code != 0 || len(out) != 0 {
		t.Errorf("no local socket: exit %d, %d bytes, %q; want 0, none", code, len(out), stderr)
	}
}

// TestE2EHVSockUsage: bad input exits 2 with one line.
func TestE2EHVSockUsage(t *testing.T) {
	dir := t.TempDir()
	bin := vmbusBinary(t)
	for _, args := range [][]string{
		{"guest", "--socket", filepath.Join(dir, "x.sock"), "hvsock", "dial", "not-a-service"},
		{"guest", "hvsock", "dial", "5000"},
		{"guest", "--socket", filepath.Join(dir, "x.sock"), "hvsock", "connect", "5000"},
		{"guest", "--socket", filepath.Join(dir, "x.sock"), "hvsock", "dial", "5000", "--exec", "cat"},
		{"host", "--socket", filepath.Join(dir, "h.sock"), "--hvsock-relay", "5000=udp:x"},
		{"host", "--socket", filepath.Join(dir, "h.sock"), "--hvsock-relay", "5000"},
	} {
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			lines := strings.Count(strings.TrimSpace(stderr.String()), "\n") + 1
			if code := exitCode(err); code != 2 || lines != 1 {
				t.Errorf("%v: exit %d, %d lines: %q; want 2, one line", args, code, lines, stderr.String())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("%v: still running", args)
		}
	}
}

func TestE2EHVSockServicingExec(t *testing.T)  { testHVSockServicing(t, "exec") }
func TestE2EHVSockServicingSpawn(t *testing.T) { testHVSockServicing(t, "spawn") }

// testHVSockServicing: a relayed connection is not carried across a
// servicing yet, so the successor rescinds it and the guest's dial ends
// with a reset (exit 1) instead of stalling on a channel nobody serves;
// the relay takes new connections in the successor.
func testHVSockServicing(t *testing.T, mode string) {
	dir := t.TempDir()
	localServer(t, filepath.Join(dir, "echo.sock"), nil)
	socket, host, logs := startRelayHostProcess(t, dir, "--servicing", mode, "--hvsock-relay", "5000=unix:"+filepath.Join(dir, "echo.sock"))
	cmd := exec.Command(vmbusBinary(t), "guest", "--socket", socket, "hvsock", "dial", "5000")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A dial that never answers is killed, which ends the read below.
	kill := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer kill.Stop()
	if _, err := io.WriteString(in, "before"); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("before"))
	if _, err := io.ReadFull(out, got); err != nil || string(got) != "before" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("echo before the servicing: %q, %v; %s", got, err, stderr.String())
	}
	kill.Stop()
	done := make(chan error, 1)
	go func() {
		io.Copy(io.Discard, out)
		done <- cmd.Wait()
	}()
	host.Process.Signal(syscall.SIGHUP)
	select {
	case err := <-done:
		if code := exitCode(err); code != 1 || !strings.Contains(stderr.String(), "reset") {
			t.Errorf("dial across a servicing: exit %d, %q; want 1, a reset", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("dial still running 30 s after the servicing\n%s", logs.String())
	}
	waitFor(t, "servicing complete", func() bool { return strings.Contains(logs.String(), "servicing complete") })
	answer, stderrNew, code := hvsockDial(t, socket, "5000", strings.NewReader("after"))
	if code != 0 || string(answer) != "after" {
		t.Errorf("a new connection after the servicing: exit %d, %q: %s", code, answer, stderrNew)
	}
}
