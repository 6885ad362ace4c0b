package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestE2EStreamRxBuffer streams through the echo device of a built
// host with a receive buffer (guest stream --rx-buffer), servicing the
// host once with SIGHUP mid-stream: every packet comes back once and
// intact, and the kept state holds the buffer's transfer page set.
func TestE2EStreamRxBuffer(t *testing.T) {
	h := startServicedHost(t, vmbusBinary(t), 1<<20)
	cmd := exec.Command(vmbusBinary(t), "guest", "--socket", h.socket, "stream",
		"--payload", "1024", "--count", "2000000", "--rx-buffer", "1048576", "--idle", "10s", "--json")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	time.Sleep(200 * time.Millisecond) // the stream under way
	select {
	case err := <-done:
		t.Fatalf("the stream ended before the servicing (%v)\n%s%s", err, out.String(), stderr.String())
	default:
	}
	h.service(t, 1)
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the stream did not end\n%s", stderr.String())
	}
	var m map[string]float64
	if err != nil || json.Unmarshal(out.Bytes(), &m) != nil || !cleanTraffic(m) || m["received"] != 2000000 {
		t.Fatalf("stream: %v: %s %s", err, out.String(), stderr.String())
	}
	state, err := exec.Command(vmbusBinary(t), "state", "inspect", "--json", h.state).Output()
	if err != nil {
		t.Fatalf("state inspect: %v", err)
	}
	t.Logf("stream across the servicing: %.0f packets in %.2f s", m["received"], m["seconds"])
	if !strings.Contains(string(state), `"channel-transfer-pages"`) {
		t.Fatalf("the kept state holds no transfer page set:\n%.2000s", state)
	}
}
