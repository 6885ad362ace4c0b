package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govmbus/govmbus/device/ic"
	"github.com/govmbus/govmbus/hosting/admin"
)

// kvpRecord is one record of a guest's pool file: a 512-byte key and a
// 2048-byte value, zero-padded (docs/ICS.md).
func kvpRecord(key, value string) []byte {
	b := make([]byte, 512+2048)
	copy(b, key)
	copy(b[512:], value)
	return b
}

// kvpFile reads a pool file into its entries.
func kvpFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string)
	for ; len(b) >= 512+2048; b = b[512+2048:] {
		out[string(bytes.TrimRight(b[:512], "\x00"))] = string(bytes.TrimRight(b[512:512+2048], "\x00"))
	}
	return out
}

// adminRun runs `vmbus admin --socket sock args...` and returns its
// stdout, stderr and exit status.
func adminRun(t *testing.T, sock string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(vmbusBinary(t), append([]string{"admin", "--socket", sock}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), exitCode(err)
}

// adminJSON runs an admin command with --json that must succeed and
// decodes its answer into v.
func adminJSON(t *testing.T, sock string, v any, args ...string) {
	t.Helper()
	out, errs, code := adminRun(t, sock, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("admin %v: exit %d: %s", args, code, errs)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("admin %v: %v: %q", args, err, out)
	}
}

// waitFor polls cond until it holds, at most 30 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 30s", what)
		}
	}
}

func icChannel(t *testing.T, sock, device string) (admin.Guest, *ic.Status) {
	t.Helper()
	var gs []admin.Guest
	adminJSON(t, sock, &gs, "guests")
	if len(gs) != 1 {
		t.Fatalf("guests %+v, want one", gs)
	}
	for _, c := range gs[0].Channels {
		if c.Device == device {
			return gs[0], c.IC
		}
	}
	t.Fatalf("guest %+v has no %s", gs[0], device)
	return admin.Guest{}, nil
}

// TestE2EICAdmin: a host with the four integration components and its
// admin socket, a guest `ic` with its KVP files and a shutdown command;
// every admin command, a servicing in the middle with a shutdown request
// in the guest's hands (answered once, to the successor; the heartbeat
// sequence and the KVP pools go on), and bad input.
func TestE2EICAdmin(t *testing.T) {
	for _, mode := range []string{"exec", "spawn"} {
		t.Run(mode, func(t *testing.T) { testICAdmin(t, mode) })
	}
}

func testICAdmin(t *testing.T, mode string) {
	bin := vmbusBinary(t)
	dir := t.TempDir()
	sock, adm, kvpDir := filepath.Join(dir, "bus.sock"), filepath.Join(dir, "admin.sock"), filepath.Join(dir, "kvp")
	ran, block, fifo, fail := filepath.Join(dir, "ran"), filepath.Join(dir, "block"), filepath.Join(dir, "fifo"), filepath.Join(dir, "fail")
	if err := os.Mkdir(kvpDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// A key the guest has before it starts: the host reads it.
	if err := os.WriteFile(filepath.Join(kvpDir, ".kvp_pool_1"), kvpRecord("fromguest", "g1"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startJSONHost(t, bin, sock, "--device", "ic", "--admin", adm, "--servicing", mode)
	// The admin socket comes after "host listening".
	waitFor(t, "admin socket", func() bool { _, err := os.Stat(adm); return err == nil })
	st, err := os.Stat(adm)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket: %v, %v", st, err)
	}

	// The shutdown command logs the action, waits on the fifo while
	// block exists, and fails while fail exists.
	onShutdown := `echo "$VMBUS_SHUTDOWN_ACTION" >> ` + ran + `; if [ -e ` + block + ` ]; then read x < ` + fifo + `; fi; test ! -e ` + fail
	ctx, cancel := context.WithCancel(context.Background())
	g := exec.CommandContext(ctx, bin, "guest", "--socket", sock, "ic", "--kvp-dir", kvpDir, "--on-shutdown", onShutdown, "--json")
	g.Cancel = func() error { return g.Process.Signal(syscall.SIGTERM) }
	var gout, gerr bytes.Buffer
	g.Stdout, g.Stderr = &gout, &gerr
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		g.Wait() //nolint:errcheck // ended by the test
		if t.Failed() {
			t.Logf("guest:\n%s%s", gout.String(), gerr.String())
		}
	}()
	negotiated := func() bool {
		var gs []admin.Guest
		adminJSON(t, adm, &gs, "guests")
		if len(gs) != 1 || len(gs[0].Channels) != 4 {
			return false
		}
		for _, c := range gs[0].Channels {
			if c.IC == nil || !c.IC.Negotiated {
				return false
			}
		}
		return true
	}
	waitFor(t, "guest with four negotiated channels", negotiated)
	id := "1"

	var hb ic.Health
	adminJSON(t, adm, &hb, "heartbeat", id)
	if hb.State != "ok" || hb.Answers == 0 || hb.Misses != 0 {
		t.Fatalf("heartbeat: %+v", hb)
	}
	var tr admin.TimeResult
	adminJSON(t, adm, &tr, "time", id)
	if tr.Versions != "3.0/4.0" || tr.Sample.ParentTime == 0 || tr.Sample.Reference == 0 {
		t.Fatalf("time: %+v", tr)
	}
	var kv admin.KVResult
	adminJSON(t, adm, &kv, "kvp", id, "set", "external", "fromhost", "h1")
	if got := kvpFile(t, filepath.Join(kvpDir, ".kvp_pool_0"))["fromhost"]; got != "h1" {
		t.Fatalf("the guest's pool file holds fromhost=%q, want h1", got)
	}
	adminJSON(t, adm, &kv, "kvp", id, "get", "guest", "fromguest")
	if len(kv.Entries) != 1 || kv.Entries[0].Value != "g1" {
		t.Fatalf("get fromguest: %+v", kv)
	}
	adminJSON(t, adm, &kv, "kvp", id, "list", "external")
	if len(kv.Entries) != 1 || kv.Entries[0] != (ic.KV{Key: "fromhost", Value: "h1"}) {
		t.Fatalf("list external: %+v", kv)
	}
	var sr ic.ShutdownResult
	adminJSON(t, adm, &sr, "shutdown", id, "--reboot", "--message", "now")
	if !sr.OK || sr.Action != "reboot" {
		t.Fatalf("reboot: %+v", sr)
	}
	if b, _ := os.ReadFile(ran); string(b) != "reboot\n" {
		t.Fatalf("the guest's command ran %q, want one reboot", b)
	}
	// The command's failure is the guest's answer: exit 1.
	os.WriteFile(fail, nil, 0o600)
	if out, errs, code := adminRun(t, adm, "shutdown", id, "--hibernate"); code != 1 || !strings.Contains(errs, "status 0x80004005") {
		t.Fatalf("a failing command: exit %d, %q %q", code, out, errs)
	}
	os.Remove(fail)
	// A guest that does not answer in time: exit 1 with the reason.
	os.WriteFile(block, nil, 0o600)
	if _, errs, code := adminRun(t, adm, "shutdown", id, "--wait", "1s"); code != 1 || !strings.Contains(errs, "waiting for the guest's answer") || strings.Count(errs, "\n") != 1 {
		t.Fatalf("no answer: exit %d, %q", code, errs)
	}
	if err := os.WriteFile(fifo, []byte("go\n"), 0); err != nil { // the late answer goes to nobody
		t.Fatal(err)
	}
	_, sd := icChannel(t, adm, "shutdown")
	waitFor(t, "the late shutdown answer", func() bool { _, s := icChannel(t, adm, "shutdown"); return !s.Pending })
	_, sd = icChannel(t, adm, "shutdown")

	// A shutdown request in the guest's hands across the servicing.
	hbBefore, _ := icChannel(t, adm, "heartbeat")
	inflight := exec.Command(bin, "admin", "--socket", adm, "shutdown", id)
	var inflightErr bytes.Buffer
	inflight.Stderr = &inflightErr
	if err := inflight.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the guest running its command", func() bool {
		b, _ := os.ReadFile(ran)
		return strings.Count(string(b), "\n") == 4
	})
	h.service(t, 1)
	// Cut off by the servicing and answered so; not sent again (the
	// guest has it).
	if err := inflight.Wait(); err == nil || !strings.Contains(inflightErr.String(), "began a servicing before the guest answered: the guest may have carried it out") {
		t.Fatalf("a shutdown request across the servicing: %v, %q", err, inflightErr.String())
	}
	if err := os.WriteFile(fifo, []byte("go\n"), 0); err != nil {
		t.Fatal(err)
	}
	os.Remove(block)
	waitFor(t, "the answer taken by the successor", func() bool {
		_, s := icChannel(t, adm, "shutdown")
		return s.Answers == sd.Answers+1 && !s.Pending
	})
	if b, _ := os.ReadFile(ran); string(b) != "reboot\nhibernate\nshutdown\nshutdown\n" {
		t.Fatalf("the guest's commands %q", b)
	}
	adminJSON(t, adm, &hb, "heartbeat", id)
	if hb.State != "ok" || hb.Sequence <= hbBefore.Health.Sequence || hb.Answers <= hbBefore.Health.Answers || hb.Misses != 0 {
		t.Fatalf("heartbeat after the servicing %+v, before %+v", hb, *hbBefore.Health)
	}
	adminJSON(t, adm, &kv, "kvp", id, "get", "external", "fromhost")
	if kv.Entries[0].Value != "h1" {
		t.Fatalf("fromhost after the servicing: %+v", kv)
	}
	adminJSON(t, adm, &kv, "kvp", id, "delete", "external", "fromhost")
	if _, ok := kvpFile(t, filepath.Join(kvpDir, ".kvp_pool_0"))["fromhost"]; ok {
		t.Fatal("fromhost still in the guest's file after delete")
	}
	g0, _ := icChannel(t, adm, "kvp")
	for _, c := range g0.Channels {
		if c.IC.Unexpected != 0 || c.IC.Unanswered != 0 {
			t.Errorf("%s: %+v", c.Device, *c.IC)
		}
	}
	if strings.Count(h.logs(), `"msg":"negotiated"`) != 4 {
		t.Errorf("negotiated %d times, want 4 (none after the servicing)", strings.Count(h.logs(), `"msg":"negotiated"`))
	}

	// Bad input: exit 2, one line.
	for _, args := range [][]string{
		{"heartbeat", "9"},
		{"heartbeat", "x"},
		{"heartbeat"},
		{"kvp", id, "list", "nopool"},
		{"kvp", id, "get", "external"},
		{"kvp", id, "frob", "external"},
		{"shutdown", id, "--reboot", "--hibernate"},
		{"shutdown", id, "--timeout", "2000000h"},
		{"shutdown", id, "--timeout", "-1s"},
	} {
		if out, errs, code := adminRun(t, adm, args...); code != 2 || out != "" || strings.Count(errs, "\n") != 1 {
			t.Errorf("admin %v: exit %d, %q %q", args, code, out, errs)
		}
	}
	// A missing key is the guest's refusal: exit 1.
	if _, errs, code := adminRun(t, adm, "kvp", id, "get", "external", "nope"); code != 1 || !strings.Contains(errs, "no such KVP key") {
		t.Errorf("missing key: exit %d, %q", code, errs)
	}
}

// TestE2EAdminAcrossServicing: admin requests sent without a pause while
// the host is serviced again and again (exec and spawn) are all answered:
// the host answers 503 with Retry while it is serviced and the client
// sends them again; none fails with the connection's end.
func TestE2EAdminAcrossServicing(t *testing.T) {
	for _, mode := range []string{"exec", "spawn"} {
		t.Run(mode, func(t *testing.T) {
			bin := vmbusBinary(t)
			dir := t.TempDir()
			sock, adm := filepath.Join(dir, "bus.sock"), filepath.Join(dir, "admin.sock")
			h := startJSONHost(t, bin, sock, "--device", "ic", "--admin", adm, "--servicing", mode)
			waitFor(t, "admin socket", func() bool { _, err := os.Stat(adm); return err == nil })
			g := exec.Command(bin, "guest", "--socket", sock, "ic", "--kvp-dir", filepath.Join(dir, "kvp"))
			if err := g.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { g.Process.Signal(syscall.SIGTERM); g.Wait() }() //nolint:errcheck // ended by the test
			waitFor(t, "the guest's heartbeat", func() bool {
				_, errs, code := adminRun(t, adm, "heartbeat", "1")
				return code == 0 && errs == ""
			})
			c := admin.NewClient(adm)
			stop := make(chan struct{})
			type tally struct {
				n    int
				errs []error
			}
			done := make(chan tally)
			for w := range 4 {
				go func() {
					var r tally
					for {
						select {
						case <-stop:
							done <- r
							return
						default:
						}
						ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
						var err error
						if w%2 == 0 {
							err = c.Do(ctx, "POST", "/v1/guests/1/heartbeat", nil, nil)
						} else {
							err = c.Do(ctx, "GET", "/v1/guests/1/kvp/external", nil, nil)
						}
						cancel()
						if r.n++; err != nil {
							r.errs = append(r.errs, err)
						}
					}
				}()
			}
			for k := 1; k <= 5; k++ {
				time.Sleep(150 * time.Millisecond)
				h.service(t, k)
			}
			time.Sleep(150 * time.Millisecond)
			close(stop)
			n := 0
			var errs []error
			for range 4 {
				r := <-done
				n += r.n
				errs = append(errs, r.errs...)
			}
			t.Logf("%d requests across 5 servicings", n)
			if len(errs) > 0 {
				t.Fatalf("%d of %d requests failed, the first: %v", len(errs), n, errs[0])
			}
		})
	}
}

// TestE2EGuestICHostGone: `vmbus guest ic` whose host goes away exits 1
// and says so, instead of running on with nothing to answer.
func TestE2EGuestICHostGone(t *testing.T) {
	bin := vmbusBinary(t)
	sock := filepath.Join(t.TempDir(), "bus.sock")
	h := startJSONHost(t, bin, sock, "--device", "ic")
	g := exec.Command(bin, "guest", "--socket", sock, "ic")
	var gout, gerr lockedBuffer // read while the guest writes
	g.Stdout, g.Stderr = &gout, &gerr
	g.WaitDelay = 10 * time.Second
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- g.Wait() }()
	// The guest has negotiated once it printed its first event.
	waitFor(t, "the guest's first event", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("guest exited early: %v\n%s%s", err, gout.String(), gerr.String())
		default:
		}
		return strings.Contains(gout.String(), "negotiated")
	})
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if code := g.ProcessState.ExitCode(); code != 1 || !strings.Contains(gerr.String(), "the host went away") {
			t.Fatalf("guest exit %v (code %d), want 1 and why: %s", err, code, gerr.String())
		}
	case <-time.After(20 * time.Second):
		g.Process.Kill()
		<-exited
		t.Fatalf("the guest still runs 20 s after its host was killed\n%s", gerr.String())
	}
	// The host ends by itself; the cleanup's SIGTERM must not meet it in
	// its last steps, after it gave SIGTERM back its default action.
	waitFor(t, "the host's exit", func() bool { return !running(h.cmd.Process.Pid) })
}

// lockedBuffer is a bytes.Buffer that a test may read while a process
// writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
