package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// listLoop runs `vmbus guest list` again and again until stop is closed:
// guests that connect, make contact, ask for the offers and leave, so that
// servicings land while a guest is arriving or leaving. Each must see both
// devices, once each.
func listLoop(t *testing.T, socket string, stop <-chan struct{}) (runs chan int) {
	runs = make(chan int, 1)
	go func() {
		n := 0
		defer func() { runs <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			out, err := exec.Command(vmbusBinary(t), "guest", "--socket", socket, "list", "--json").Output()
			var offers []offerJSON
			if err != nil || json.Unmarshal(out, &offers) != nil || len(offers) != 2 || offers[0].ChannelID == offers[1].ChannelID {
				var stderr []byte
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = ee.Stderr
				}
				t.Errorf("guest list: %v: %s %s", err, out, stderr)
				return
			}
			n++
		}
	}()
	return runs
}

// TestE2EServicingGuestsComeAndGo services a host 30 times while guests
// connect and disconnect in tight loops (short pings, offer listings,
// small disk verifies) beside a long stream: a guest that leaves during
// the pause or the save, or that has connected without its servers yet,
// must neither fail the servicing nor cost another guest its channel, and
// no guest may be offered a device twice.
func TestE2EServicingGuestsComeAndGo(t *testing.T) {
	h := startServicedHost(t, vmbusBinary(t), 1<<20)
	stop := make(chan struct{})
	streams := guestLoop(t, h.socket, stop, cleanTraffic, "stream", "--payload", "200", "--count", "100000")
	pings := guestLoop(t, h.socket, stop, cleanTraffic, "ping", "--count", "1")
	pings2 := guestLoop(t, h.socket, stop, cleanTraffic, "ping", "--count", "50")
	disks := guestLoop(t, h.socket, stop, func(m map[string]float64) bool {
		return m["size"] == 4096 && m["mismatches"] == 0
	}, "disk", "verify", "--size", "4096")
	lists := listLoop(t, h.socket, stop)
	time.Sleep(200 * time.Millisecond)
	const n = 30
	for i := 1; i <= n && !t.Failed(); i++ {
		h.service(t, i)
		time.Sleep(150 * time.Millisecond)
	}
	close(stop)
	s, p, p2, d, l := <-streams, <-pings, <-pings2, <-disks, <-lists
	t.Logf("%d servicings; %d streams, %d short pings, %d pings, %d disk verifies, %d lists", n, s, p, p2, d, l)
	logs := h.logs()
	for _, bad := range []string{"servicing failed", "device not restored", `"msg":"offer"`} {
		if strings.Contains(logs, bad) {
			t.Errorf("the host logged %q:\n%s", bad, logs)
			break
		}
	}
	if t.Failed() {
		t.Logf("the host's log:\n%s", logs)
	}
	if s == 0 || p == 0 || p2 == 0 || d == 0 || l == 0 {
		t.Fatalf("a guest loop made no run")
	}
}
