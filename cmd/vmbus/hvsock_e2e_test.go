package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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
	return startRelayHostBinary(t, vmbusBinary(t), dir, args...)
}

// startRelayHostBinary is startRelayHostProcess with the binary at bin.
func startRelayHostBinary(t testing.TB, bin, dir string, args ...string) (string, *exec.Cmd, *lockedBuffer) {
	t.Helper()
	socket := filepath.Join(dir, "bus.sock")
	cmd := exec.Command(bin, append([]string{"host", "--socket", socket}, args...)...)
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

// startPipedDial starts `vmbus guest hvsock dial 5000` on socket with
// pipes for its standard input and output, killed after limit if it has
// not ended; the test's end closes its input.
func startPipedDial(t *testing.T, socket string, limit time.Duration) (*exec.Cmd, io.WriteCloser, io.ReadCloser, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command(vmbusBinary(t), "guest", "--socket", socket, "hvsock", "dial", "5000")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := new(lockedBuffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill := time.AfterFunc(limit, func() { cmd.Process.Kill() })
	t.Cleanup(func() { kill.Stop() })
	return cmd, in, out, stderr
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
	// The guest still writes after it has read the end: its bytes are
	// dropped, not met by a reset (whatever the order of the two).
	out, stderr, code = hvsockDial(t, socket, "5002", io.MultiReader(lateReader{300 * time.Millisecond}, strings.NewReader("late")))
	if code != 0 || len(out) != 0 {
		t.Errorf("no local socket, the guest writing late: exit %d, %d bytes, %q; want 0, none", code, len(out), stderr)
	}
}

// lateReader reads nothing for its time, then ends.
type lateReader struct{ d time.Duration }

func (l lateReader) Read([]byte) (int, error) { time.Sleep(l.d); return 0, io.EOF }

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
		{"host", "--socket", filepath.Join(dir, "h.sock"), "--hvsock-connect", "5000=unix:x"},
		{"host", "--socket", filepath.Join(dir, "h.sock"), "--hvsock-connect", "unix:x=not-a-service"},
		{"host", "--socket", filepath.Join(dir, "h.sock"), "--hvsock-connect", "tcp:127.0.0.1:1=5000"},
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

func TestE2EHVSockServicingExec(t *testing.T)  { testHVSockServicing(t, "exec", 0) }
func TestE2EHVSockServicingSpawn(t *testing.T) { testHVSockServicing(t, "spawn", 0) }

// TestE2EHVSockServicingFailsAfterSave, exec and spawn: the second of the
// three servicings fails after its save (its --state-file cannot be
// written), and the host restores the connection in its own process from
// what it saved, bytes piled in the relay included; the third carries it
// on.
func TestE2EHVSockServicingExecFailsAfterSave(t *testing.T)  { testHVSockServicing(t, "exec", 2) }
func TestE2EHVSockServicingSpawnFailsAfterSave(t *testing.T) { testHVSockServicing(t, "spawn", 2) }

// carriedStream is the bytes streamed across servicings: 64 MiB, 16 MiB
// under the race detector.
func carriedStream() int {
	if raceEnabled {
		return 16 << 20
	}
	return 64 << 20
}

// hashingEcho is a local echo server that also hashes what it received,
// for a relayed stream across servicings: received returns the SHA-256
// (hex) and byte count of all it read, once its connection ended.
// While gate is locked, it reads nothing.
func hashingEcho(t *testing.T, path string, gate *sync.RWMutex) (received func() (string, int64)) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	var sum string
	var n int64
	wg.Go(func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		uc := c.(*net.UnixConn)
		h := sha256.New()
		buf := make([]byte, 64<<10)
		for {
			k, err := uc.Read(buf)
			// Held here (not in Read, which a locker would wait for),
			// it reads nothing more until the gate opens.
			gate.RLock()
			if k > 0 {
				h.Write(buf[:k])
				n += int64(k)
				if _, werr := uc.Write(buf[:k]); werr != nil {
					err = werr
				}
			}
			gate.RUnlock()
			if err != nil {
				break
			}
		}
		uc.CloseWrite()
		sum = hex.EncodeToString(h.Sum(nil))
		close(done)
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return func() (string, int64) {
		select {
		case <-done:
			return sum, n
		case <-time.After(60 * time.Second):
			t.Fatal("the local server's connection did not end")
			return "", 0
		}
	}
}

// testHVSockServicing: a stream of random bytes goes through `hvsock dial`,
// the relay and a local echo server and back, while the host is serviced
// three times (SIGHUP, in mode), each servicing once a further part of
// the stream came back; what came back, what the local server received
// and what was sent have the same SHA-256, and dial exits 0 (both
// directions ended in order). The relay takes new connections after.
// Servicing number failAt (none if 0) finds the directory of the host's
// --state-file gone: it fails after its save and restores in place.
func testHVSockServicing(t *testing.T, mode string, failAt int) {
	dir := t.TempDir()
	var gate sync.RWMutex
	received := hashingEcho(t, filepath.Join(dir, "echo.sock"), &gate)
	stateDir := filepath.Join(dir, "state")
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	socket, host, logs := startRelayHostProcess(t, dir, "--servicing", mode, "--state-file", filepath.Join(stateDir, "host.state"),
		"--hvsock-relay", "5000=unix:"+filepath.Join(dir, "echo.sock"))
	defer func() {
		if t.Failed() {
			t.Logf("host:\n%s", logs.String())
		}
	}()
	// A dial that never ends is killed, which ends the reads below.
	cmd, in, out, stderr := startPipedDial(t, socket, 90*time.Second)
	// The stream goes in servicings+1 parts. The first servicing comes
	// right after a part is in dial's stdin, its echo on its way back;
	// the others while the local server does not read, the part's bytes
	// piling up in the relay on their way to it. The next part follows
	// once the servicing is complete.
	const servicings = 3
	size := carriedStream()
	part := size / (servicings + 1)
	sent := sha256.New()
	wrote, next := make(chan error, 1), make(chan bool)
	go func() {
		buf := make([]byte, 64<<10)
		for k := 0; k <= servicings; k++ {
			if !<-next {
				return
			}
			for left := part; left > 0; left -= len(buf) {
				b := buf[:min(len(buf), left)]
				rand.Read(b)
				sent.Write(b)
				if _, err := in.Write(b); err != nil {
					wrote <- err
					return
				}
			}
			wrote <- nil
		}
	}()
	var back atomic.Int64
	got := sha256.New()
	read := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.MultiWriter(got, counter{&back}), out)
		read <- err
	}()
	defer close(next)
	// A failure below leaves the gate open, or the local server's
	// cleanup would wait for it for ever.
	gated := false
	defer func() {
		if gated {
			gate.Unlock()
		}
	}()
	for k := 0; k <= servicings; k++ {
		gated = k > 1
		if gated {
			gate.Lock()
		}
		next <- true
		if k == 1 {
			if err := <-wrote; err != nil {
				t.Fatalf("writing to dial: %v (%d bytes back); %s", err, back.Load(), stderr.String())
			}
		}
		if k > 0 {
			if k == failAt {
				if err := os.RemoveAll(stateDir); err != nil {
					t.Fatal(err)
				}
			}
			host.Process.Signal(syscall.SIGHUP)
			// A servicing that failed after its save ends rolled back.
			waitFor(t, fmt.Sprintf("servicing %d complete", k), func() bool {
				l := logs.String()
				return strings.Count(l, "servicing complete")+strings.Count(l, "servicing rolled back") >= k
			})
			if k == failAt {
				if !strings.Contains(logs.String(), "servicing failed; restoring in this process") {
					t.Fatalf("servicing %d without its state file's directory did not fail after its save", k)
				}
				if err := os.Mkdir(stateDir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
		}
		if gated {
			gated = false
			gate.Unlock()
		}
		if k != 1 {
			if err := <-wrote; err != nil {
				t.Fatalf("writing to dial: %v (%d bytes back); %s", err, back.Load(), stderr.String())
			}
		}
	}
	in.Close()
	size = part * (servicings + 1)
	if err := <-read; err != nil {
		t.Fatalf("reading from dial: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("dial: %v; %s\n%s", err, stderr.String(), logs.String())
	}
	want := hex.EncodeToString(sent.Sum(nil))
	if g := hex.EncodeToString(got.Sum(nil)); g != want || back.Load() != int64(size) {
		t.Errorf("came back %d bytes, SHA-256 %s; sent %d, %s\n%s", back.Load(), g, size, want, logs.String())
	}
	if sum, n := received(); sum != want || n != int64(size) {
		t.Errorf("the local server received %d bytes, SHA-256 %s; sent %d, %s", n, sum, size, want)
	}
	if c := strings.Count(logs.String(), "hvsock connections carried"); c != servicings {
		t.Errorf("%d servicings carried the connection, want %d\n%s", c, servicings, logs.String())
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "hvsock connections carried") {
			t.Log(line)
		}
	}
	t.Logf("%d bytes both ways across %d %s servicings, SHA-256 %s", size, servicings, mode, want)
}

// counter counts what is written to it.
type counter struct{ n *atomic.Int64 }

func (c counter) Write(b []byte) (int, error) {
	c.n.Add(int64(len(b)))
	return len(b), nil
}

func TestE2EHVSockHalfClosedServicingExec(t *testing.T) { testHVSockHalfClosedServicing(t, "exec") }
func TestE2EHVSockHalfClosedServicingSpawn(t *testing.T) {
	testHVSockHalfClosedServicing(t, "spawn")
}

// testHVSockHalfClosedServicing: the guest's stdin ends (its FIN passed on
// to the local server, which reads to its EOF) before the servicing, and
// the local server's answer, the SHA-256 of what it read, comes only
// after it: the half-closed connection is carried, dial prints the answer
// and exits 0.
func testHVSockHalfClosedServicing(t *testing.T, mode string) {
	dir := t.TempDir()
	path := filepath.Join(dir, "late.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	gotEOF, answer := make(chan string, 1), make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		uc := c.(*net.UnixConn)
		h := sha256.New()
		io.Copy(h, uc)
		sum := hex.EncodeToString(h.Sum(nil))
		gotEOF <- sum
		select {
		case <-answer:
			io.WriteString(uc, sum)
			uc.CloseWrite()
		case <-time.After(60 * time.Second):
		}
	})
	socket, host, logs := startRelayHostProcess(t, dir, "--servicing", mode, "--hvsock-relay", "5000=unix:"+path)
	data := randomBytes(t, 1<<20)
	cmd := exec.Command(vmbusBinary(t), "guest", "--socket", socket, "hvsock", "dial", "5000")
	cmd.Stdin = bytes.NewReader(data)
	var stdout bytes.Buffer
	var stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	kill := time.AfterFunc(90*time.Second, func() { cmd.Process.Kill() })
	defer kill.Stop()
	want := sha256.Sum256(data)
	select {
	case sum := <-gotEOF:
		if sum != hex.EncodeToString(want[:]) {
			t.Fatalf("the local server read SHA-256 %s, want %x", sum, want)
		}
	case err := <-done:
		t.Fatalf("dial ended before the local server's EOF: %v; %s", err, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("no EOF at the local server")
	}
	host.Process.Signal(syscall.SIGHUP)
	waitFor(t, "servicing complete", func() bool { return strings.Contains(logs.String(), "servicing complete") })
	close(answer)
	if err := <-done; err != nil {
		t.Fatalf("dial: %v; %s\n%s", err, stderr.String(), logs.String())
	}
	if stdout.String() != hex.EncodeToString(want[:]) {
		t.Errorf("dial printed %q, want %x\n%s", stdout.String(), want, logs.String())
	}
	if !strings.Contains(logs.String(), "hvsock connections carried") {
		t.Errorf("the connection was not carried\n%s", logs.String())
	}
}

// connectLocal connects to a connect relay's local socket, writes in
// (then half-closes) and returns all it reads; a write or read error is
// fatal unless refused, where the relay closing the connection is what
// the caller expects.
func connectLocal(t *testing.T, path, in string, refused bool) string {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.WriteString(c, in); err != nil && !refused {
		t.Fatal(err)
	}
	c.(*net.UnixConn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil && !refused {
		t.Fatalf("read from %s: %v", path, err)
	}
	return string(b)
}

// TestE2EHVSockConnect: host --hvsock-connect relays a local connection
// into a host-initiated connection to a guest's `hvsock listen`: bytes
// both ways, half-close passed on; with --exec each local connection
// runs the command; with no guest the local connection is closed at
// once, and the relay is serviced with the host (a connection after an
// exec servicing still reaches the guest).
func TestE2EHVSockConnect(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.sock")
	socket, host, logs := startRelayHostProcess(t, dir, "--hvsock-connect", "unix:"+in+"=6000")
	// Bound after the bus's socket.
	waitFor(t, "the connect socket", func() bool {
		_, err := os.Stat(in)
		return err == nil
	})
	// No guest yet: closed without a byte.
	if got := connectLocal(t, in, "anyone?", true); got != "" {
		t.Errorf("with no guest: read %q, want nothing", got)
	}
	listen := exec.Command(vmbusBinary(t), "guest", "--socket", socket, "hvsock", "listen", "6000")
	listen.Stdin = strings.NewReader("from the guest")
	var stdout, stderr lockedBuffer
	listen.Stdout, listen.Stderr = &stdout, &stderr
	if err := listen.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- listen.Wait() }()
	waitFor(t, "the guest's offers", func() bool { return strings.Contains(logs.String(), "offers sent") })
	if got := connectLocal(t, in, "from the host", false); got != "from the guest" {
		t.Errorf("the local end read %q, want %q\n%s", got, "from the guest", logs.String())
	}
	select {
	case err := <-done:
		if err != nil || stdout.String() != "from the host" {
			t.Errorf("hvsock listen: %v, printed %q; %s", err, stdout.String(), stderr.String())
		}
	case <-time.After(60 * time.Second):
		listen.Process.Kill()
		<-done
		t.Fatalf("hvsock listen did not end: %s", stderr.String())
	}

	execd := exec.Command(vmbusBinary(t), "guest", "--socket", socket, "hvsock", "listen", "6000", "--exec", "tr a-z A-Z")
	execd.Stderr = &stderr
	if err := execd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		execd.Process.Kill()
		execd.Wait()
	}()
	waitFor(t, "the second guest's offers", func() bool { return strings.Count(logs.String(), "offers sent") >= 2 })
	for i := range 2 {
		if got := connectLocal(t, in, fmt.Sprintf("call %d", i), false); got != fmt.Sprintf("CALL %d", i) {
			t.Errorf("--exec, call %d: read %q\n%s", i, got, logs.String())
		}
	}
	// A connection open across the servicing is carried: what is
	// written before and after it comes back whole.
	c, err := net.Dial("unix", in)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.WriteString(c, "before "); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the carried connection's channel", func() bool { return strings.Count(logs.String(), "channel opened") >= 4 })
	host.Process.Signal(syscall.SIGHUP)
	waitFor(t, "servicing complete", func() bool { return strings.Contains(logs.String(), "servicing complete") })
	if !strings.Contains(logs.String(), "hvsock connections carried") {
		t.Errorf("the open connection was not carried\n%s", logs.String())
	}
	if _, err := io.WriteString(c, "and after"); err != nil {
		t.Fatal(err)
	}
	c.(*net.UnixConn).CloseWrite()
	if b, err := io.ReadAll(c); err != nil || string(b) != "BEFORE AND AFTER" {
		t.Errorf("the connection across the servicing read %q, %v\n%s", b, err, logs.String())
	}
	if got := connectLocal(t, in, "after", false); got != "AFTER" {
		t.Errorf("--exec after a servicing: read %q\n%s", got, logs.String())
	}
}

// TestE2EHVSockRollbackRefused: a successor that does not read the
// host-hvsock-conn record (the binary at the exec path answers the
// pre-flight without 0x0204, as a build from before it would) is refused
// while a relayed connection is open, before anything pauses, and the
// connection goes on undisturbed; the same build's successor then
// carries it.
func TestE2EHVSockRollbackRefused(t *testing.T) {
	dir := t.TempDir()
	bin := copyBinary(t)
	localServer(t, filepath.Join(dir, "echo.sock"), nil)
	socket, host, logs := startRelayHostBinary(t, bin, dir, "--hvsock-relay", "5000=unix:"+filepath.Join(dir, "echo.sock"))
	kinds, err := exec.Command(bin, "host", "--state-kinds").Output()
	if err != nil || !strings.Contains(string(kinds), "kind 0x0204") {
		t.Fatalf("--state-kinds: %v\n%s", err, kinds)
	}
	var answer strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(string(kinds)), "\n") {
		if !strings.Contains(line, "0x0204") {
			answer.WriteString(line + "\\n")
		}
	}
	script := filepath.Join(dir, "older")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '"+answer.String()+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd, in, out, stderr := startPipedDial(t, socket, 60*time.Second)
	echo := func(s string) {
		t.Helper()
		if _, err := io.WriteString(in, s); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(s))
		if _, err := io.ReadFull(out, got); err != nil || string(got) != s {
			t.Fatalf("echo %q: %q, %v; %s\n%s", s, got, err, stderr.String(), logs.String())
		}
	}
	echo("before")
	install(t, script, bin)
	host.Process.Signal(syscall.SIGHUP)
	waitFor(t, "servicing refused", func() bool { return strings.Contains(logs.String(), "servicing refused") })
	if l := logs.String(); !strings.Contains(l, "0x0204 host-hvsock-conn") || strings.Contains(l, "servicing complete") {
		t.Fatalf("want a refusal for 0x0204 and no servicing:\n%s", l)
	}
	echo("after the refusal")
	install(t, vmbusBinary(t), bin)
	host.Process.Signal(syscall.SIGHUP)
	waitFor(t, "servicing complete", func() bool { return strings.Contains(logs.String(), "servicing complete") })
	echo("after the servicing")
	if !strings.Contains(logs.String(), "hvsock connections carried") {
		t.Errorf("not carried:\n%s", logs.String())
	}
	in.Close()
	if b, err := io.ReadAll(out); err != nil || len(b) != 0 {
		t.Errorf("after the end: %q, %v", b, err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("dial: %v; %s", err, stderr.String())
	}
}

// TestE2EHVSockDialsAcrossServicing: `hvsock dial`s run one after another,
// 64 KiB each through the relay to a local echo server, while the host
// is serviced (SIGHUP, exec) again 150 ms after each servicing, until 40
// dials and three servicings are done. Every
// dial goes through and gets its bytes back whole, whatever stage its
// connection was in when the bus parked (asked for and offered, opened,
// dialing the local socket, relaying, ended), and no pause's wait runs
// out: a wait for what had gone (a linger of a guest that left) held each
// servicing after a guest's last connection for its full second.
func TestE2EHVSockDialsAcrossServicing(t *testing.T) {
	dir := t.TempDir()
	local := filepath.Join(dir, "local.sock")
	localServer(t, local, nil)
	socket, host, logs := startRelayHostProcess(t, dir, "--hvsock-relay", "5000=unix:"+local)
	data := randomBytes(t, 64<<10)
	// One servicing at a time, each waited for: a SIGTERM (the
	// cleanup's) during an exec would meet the new image before it
	// handles signals, and end it.
	stop := make(chan struct{})
	var hups sync.WaitGroup
	var stuck atomic.Bool
	hups.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(150 * time.Millisecond):
			}
			n := strings.Count(logs.String(), "servicing complete")
			host.Process.Signal(syscall.SIGHUP)
			for end := time.Now().Add(30 * time.Second); strings.Count(logs.String(), "servicing complete") == n; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(end) {
					stuck.Store(true)
					return
				}
			}
		}
	})
	// 40 dials at least, and on until three servicings have completed
	// (on a fast machine 40 dials take less than two servicings' time).
	ok := 0
	for i := 0; i < 40 || strings.Count(logs.String(), "servicing complete") < 3; i++ {
		if i == 4000 {
			t.Fatalf("4000 dials and %d servicings:\n%s", strings.Count(logs.String(), "servicing complete"), logs.String())
		}
		start := time.Now()
		out, stderr, code := hvsockDial(t, socket, "5000", bytes.NewReader(data))
		if code == 0 {
			if !bytes.Equal(out, data) {
				t.Fatalf("dial %d: %d bytes back, equal %v", i, len(out), bytes.Equal(out, data))
			}
			ok++
			continue
		}
		t.Fatalf("dial %d failed after %v: %s", i, time.Since(start).Round(time.Millisecond), stderr)
	}
	close(stop)
	hups.Wait()
	if stuck.Load() {
		t.Fatalf("a servicing did not complete within 30 s:\n%s", logs.String())
	}
	serviced := strings.Count(logs.String(), "servicing complete")
	if serviced < 3 {
		t.Fatalf("%d servicings, want 3 at least\n%s", serviced, logs.String())
	}
	if strings.Contains(logs.String(), "wait ran out") {
		t.Fatalf("a pause's wait ran out:\n%s", logs.String())
	}
	t.Logf("%d dials through, %d servicings", ok, serviced)
}
