package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/ring"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

// vmbusBinary builds the CLI once per test binary into a temporary directory.
func vmbusBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "vmbus-e2e-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "vmbus")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("build: %v", buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	if path := os.Getenv(unixPeerEnv); path != "" {
		os.Exit(unixPeer(path, os.Getenv(unixPeerModeEnv)))
	}
	code := m.Run()
	for _, dir := range []string{binDir, benchBinDir} {
		if dir != "" {
			os.RemoveAll(dir)
		}
	}
	os.Exit(code)
}

// startHost runs `vmbus host` in its own process and waits for its socket.
func startHost(t *testing.T) (socket string, stop func() string) {
	t.Helper()
	bin := vmbusBinary(t)
	socket = filepath.Join(t.TempDir(), "bus.sock")
	cmd := exec.Command(bin, "host", "--socket", socket, "--device", "echo")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	// Wait returns at most this long after the host exits, even if a
	// process it left behind holds the log open.
	cmd.WaitDelay = logEndTimeout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(socket); err == nil {
			break
		}
		if time.Now().After(deadline) {
			killTree(cmd.Process.Pid) // a spawn-mode worker would hold the log open
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("host did not listen: %s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var once sync.Once
	stop = func() string {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("host exit: %v\n%s", err, logs.String())
				}
			case <-time.After(10 * time.Second):
				killTree(cmd.Process.Pid) // a spawn-mode worker would hold the log open
				cmd.Process.Kill()
				<-done
				t.Errorf("host did not stop\n%s", logs.String())
			}
		})
		return logs.String()
	}
	t.Cleanup(func() { stop() })
	return socket, stop
}

func TestE2EGuestList(t *testing.T) {
	socket, stop := startHost(t)
	out, err := exec.Command(vmbusBinary(t), "guest", "--socket", socket, "list", "--json").Output()
	if err != nil {
		t.Fatalf("guest list: %v", err)
	}
	var offers []offerJSON
	if err := json.Unmarshal(out, &offers); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(offers) != 1 || offers[0].ChannelID != 1 || offers[0].InterfaceType != echo.InterfaceType || offers[0].ConnectionID != 0x2001 {
		t.Fatalf("offers: %s", out)
	}
	stop()
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}

func TestE2EExitStatus(t *testing.T) {
	bin := vmbusBinary(t)
	cmd := exec.Command(bin, "guest", "--socket", filepath.Join(t.TempDir(), "none"), "list")
	if err := cmd.Run(); exitCode(err) != 1 {
		t.Fatalf("unreachable host: %v", err)
	}
	// Bad values of the capture are refused before the file is touched.
	kept := filepath.Join(t.TempDir(), "kept")
	if err := os.WriteFile(kept, []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"guest", "list"}, {"host"}, {"guest", "--socket", "x", "bogus"}, {"host", "--socket", "x", "--device", "nope"},
		{"host", "--socket", "x", "--capture", kept, "--capture-snaplen", "-1"},
		{"host", "--socket", "x", "--capture", kept, "--capture-snaplen", "1048577"},
		{"host", "--socket", "x", "--capture", kept, "--capture-max-bytes", "-1"},
		{"host", "--socket", "x", "--capture-snaplen", "64"},
		{"demo", "--capture", kept, "--capture-snaplen", "-1"},
		{"demo", "--capture", kept, "--capture-max-bytes", "-1"},
		{"host", "--socket", "x", "--state-file", t.TempDir()},
		{"host", "--socket", "x", "--metrics", "bogus"},
		{"host", "--socket", "x", "--metrics", "127.0.0.1:99999"},
	} {
		if err := exec.Command(bin, args...).Run(); exitCode(err) != 2 {
			t.Fatalf("%v: %v, want exit 2", args, err)
		}
	}
	if b, err := os.ReadFile(kept); string(b) != "kept" {
		t.Fatalf("the file at --capture after the refusals: %q, %v", b, err)
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}

// TestE2EEchoAndShutdown drives a Go guest against the host process: an echo
// round trip through an opened channel, then the host's shutdown rescinds it.
func TestE2EEchoAndShutdown(t *testing.T) {
	socket, stop := startHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := guest.Dial(ctx, socket, guest.Config{MemorySize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if cl.Version() != protocol.VersionCopper {
		t.Fatalf("version %v", cl.Version())
	}
	o, err := cl.WaitOffer(ctx, echo.InterfaceType, protocol.GUID{})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := cl.Open(ctx, o, guest.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := ring.NewWriter(ch.Out)
	r, _ := ring.NewReader(ch.In)
	var p ring.Packet
	for i := range 100 {
		msg := bytes.Repeat([]byte{byte(i)}, 64)
		if err := w.WriteInBand(uint64(i), ring.FlagCompletionRequested, msg); err != nil {
			t.Fatal(err)
		}
		if w.Commit() {
			ch.ToHost.Signal()
		}
		for {
			err := r.Next(&p)
			if errors.Is(err, ring.ErrEmpty) {
				if more, _ := r.EnableInterrupts(); !more {
					if err := ch.FromHost.Wait(ctx); err != nil {
						t.Fatal(err)
					}
				}
				r.DisableInterrupts()
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		if p.Type != ring.TypeCompletion || p.TransactionID != uint64(i) || !bytes.Equal(p.Payload(), msg) {
			t.Fatalf("packet %d: %v %d", i, p.Type, p.TransactionID)
		}
		r.Commit()
	}
	go func() {
		for id := range cl.Rescinded() {
			if id == ch.Offer.ChannelID {
				ch.Close(context.Background())
			}
		}
	}()
	logs := stop()
	if !bytes.Contains([]byte(logs), []byte("channel id released")) {
		t.Fatalf("guest did not release the rescinded channel:\n%s", logs)
	}
}
