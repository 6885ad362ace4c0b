package hosting_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/capture"
	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/hosting/stdkinds"
)

// readCapture returns every record of the capture in path.
func readCapture(t *testing.T, path string) []capture.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd := capture.NewReader(f)
	var recs []capture.Record
	for {
		r, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return recs
		}
		if err != nil {
			t.Fatalf("after %d records: %v", len(recs), err)
		}
		r.Data = append([]byte(nil), r.Data...)
		recs = append(recs, r)
	}
}

// TestCaptureAcrossServicing: a daemon capturing its bus is serviced (in
// this process) while a guest pings its echo device; the successor
// appends a section. Every echo request appears exactly once coming in
// and its completion exactly once going out, before, across and after
// the handover, and the guest's control messages are all there.
func TestCaptureAcrossServicing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bus.pcapng")
	cfg := hosting.Config{Socket: filepath.Join(dir, "bus.sock"), Kinds: stdkinds.Registry(), Devices: []string{"echo"},
		Capture: hosting.CaptureConfig{Path: path}}
	d, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Serve(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := guest.Dial(ctx, cfg.Socket, guest.Config{MemorySize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	c, err := echo.Open(ctx, cl, echo.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// Three pings told apart by their payload sizes; the second runs
	// while the servicing does.
	pings := []struct{ count, size int }{{50, 64}, {300, 72}, {50, 80}}
	ping := func(i int) {
		if r, err := c.Ping(ctx, pings[i].count, pings[i].size, 20*time.Second); err != nil || r.Received != uint64(pings[i].count) || r.Corrupted != 0 {
			t.Errorf("ping %d: %+v, %v", i, r, err)
		}
	}
	ping(0)
	next, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); ping(1) }()
	if err := d.ServiceTo(next); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	ping(2)
	c.Close()
	cl.Close()
	if err := next.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	recs := readCapture(t, path)
	type key struct {
		size int
		seq  uint64
		dir  capture.Dir
	}
	seen := map[key]int{}
	controls := map[capture.Dir]map[string]int{capture.In: {}, capture.Out: {}}
	sections := map[int]bool{}
	var events []string
	for i := range recs {
		r := &recs[i]
		sections[r.Section] = true
		s := capture.Summarize(r)
		switch r.Kind {
		case capture.KindControl:
			controls[r.Dir][s.Type]++
		case capture.KindEvent:
			events = append(events, string(r.Data))
		case capture.KindPacket:
			payload := r.Data[capture.DescriptorSize:]
			if len(payload) < 8 {
				continue
			}
			if (r.Dir == capture.In) != (s.Type == "InBand") {
				t.Fatalf("record %d: %s %s", i, s.Dir, s.Type)
			}
			seen[key{len(payload), binary.LittleEndian.Uint64(payload), r.Dir}]++
		}
	}
	for _, p := range pings {
		for seq := range p.count {
			for _, dir := range []capture.Dir{capture.In, capture.Out} {
				if n := seen[key{p.size, uint64(seq), dir}]; n != 1 {
					t.Errorf("%d-byte ping %d %s: %d times", p.size, seq, dir, n)
				}
			}
		}
	}
	if len(seen) != 2*(50+300+50) {
		t.Errorf("%d distinct packets, want %d", len(seen), 2*400)
	}
	if !sections[0] || !sections[1] || len(sections) != 2 {
		t.Errorf("sections %v", sections)
	}
	for _, typ := range []string{"InitiateContact", "RequestOffers", "GpadlHeader", "OpenChannel", "CloseChannel", "GpadlTeardown"} {
		if controls[capture.In][typ] == 0 {
			t.Errorf("no %s from the guest: %v", typ, controls[capture.In])
		}
	}
	for _, typ := range []string{"VersionResponse", "OfferChannel", "AllOffersDelivered", "GpadlCreated", "OpenChannelResult", "GpadlTorndown"} {
		if controls[capture.Out][typ] == 0 {
			t.Errorf("no %s to the guest: %v", typ, controls[capture.Out])
		}
	}
	if len(events) < 3 {
		t.Errorf("events %q", events)
	}
	t.Logf("%d records, control in %v, out %v, events %q", len(recs), controls[capture.In], controls[capture.Out], events)
}
