package echo

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
)

func TestCompletionEchoesPayload(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, ServerConfig{}, ClientConfig{})
	req := []byte("completion-mode!")
	resp := make([]byte, 64)
	n, err := r.c.Channel().SendSynchronousRequest(req, nil, 0, resp, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resp[:len(req)], req) || n != len(req) {
		t.Fatalf("completion %q (%d bytes), want %q", resp[:n], n, req)
	}
	if r.c.Stray() != 0 {
		t.Fatalf("a completion-mode packet also came back as a packet")
	}
}

func TestPacketBackWithoutCompletion(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, ServerConfig{}, ClientConfig{})
	op, err := r.c.Channel().AllocatePacket()
	if err != nil {
		t.Fatal(err)
	}
	// A routine of its own keeps the packet the test's to reuse (the
	// default one frees it after its first send).
	op.SetCompletion(func(*channel.OutPacket, channel.Status, []byte) {})
	defer op.Free()
	for range 3 {
		if err := op.Send([]byte("packet-back-mode"), 0); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.c.Stray() != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d packets back, want 3", r.c.Stray())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPing(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, ServerConfig{}, ClientConfig{})
	res, err := r.c.Ping(context.Background(), 200, 64, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 200 || res.Received != 200 || res.Lost+res.Corrupted+res.Duplicated != 0 || res.P50 <= 0 || res.P99 < res.P50 {
		t.Fatalf("%+v", res)
	}
}

func TestStream(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, ServerConfig{}, ClientConfig{})
	for _, size := range []int{16, 64, 1000, 16384} {
		res, err := r.c.Stream(context.Background(), StreamConfig{Payload: size, Count: 3000, Window: 200})
		if err != nil {
			t.Fatal(err)
		}
		if res.Sent != 3000 || res.Received != 3000 || res.Lost+res.Corrupted+res.Duplicated != 0 || res.BytesPerSec <= 0 {
			t.Fatalf("payload %d: %+v", size, res)
		}
	}
}

// TestStreamDefaultWindow: the default window is what one ring holds.
func TestStreamDefaultWindow(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, ServerConfig{}, ClientConfig{})
	for _, size := range []int{16, 64, 16384, DefaultMaxPayload - 8} {
		res, err := r.c.Stream(context.Background(), StreamConfig{Payload: size, Count: 5000})
		if err != nil {
			t.Fatal(err)
		}
		if res.Sent != 5000 || res.Received != 5000 || res.Lost+res.Corrupted+res.Duplicated != 0 {
			t.Fatalf("payload %d: %+v", size, res)
		}
	}
}

// TestStreamWindowBeyondRing: with a window larger than the rings hold,
// packets wait in the channels' send queues and still all come back.
func TestStreamWindowBeyondRing(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, ServerConfig{}, ClientConfig{RingPages: 9})
	res, err := r.c.Stream(context.Background(), StreamConfig{Payload: 4096, Count: 3000, Window: 64})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 3000 || res.Received != 3000 || res.Lost+res.Corrupted+res.Duplicated != 0 {
		t.Fatalf("%+v", res)
	}
}

// TestStreamBothDirectionsQueued: a window far beyond what the rings
// hold, at sizes that do and do not divide the ring, keeps both ends'
// send queues busy at once (the client's packets and the VSP's answers
// wait for ring space); every packet still comes back once, intact.
func TestStreamBothDirectionsQueued(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, ServerConfig{}, ClientConfig{RingPages: 3})
	for _, tc := range []struct {
		payload, window int
		count           uint64
	}{
		{64, 2000, 40000},
		{1000, 500, 10000},
		{4096, 100, 3000},
		{7000, 64, 2000},
	} {
		res, err := r.c.Stream(context.Background(), StreamConfig{Payload: tc.payload, Count: tc.count, Window: tc.window})
		if err != nil {
			t.Fatal(err)
		}
		if res.Sent != tc.count || res.Received != tc.count || res.Lost+res.Corrupted+res.Duplicated != 0 {
			t.Fatalf("payload %d window %d: %+v\nclient %+v\nserver %+v", tc.payload, tc.window, res, r.c.Channel().Stats(), r.srv.Channel().Stats())
		}
	}
	cq, sq := r.c.Channel().Stats().Queued, r.srv.Channel().Stats().Queued
	if cq == 0 || sq == 0 {
		t.Fatalf("queued sends: client %d, VSP %d; want both ends to have queued", cq, sq)
	}
	t.Logf("queued sends: client %d, VSP %d", cq, sq)
}

func TestRingWindow(t *testing.T) {
	for _, tc := range []struct{ pages, payload, want int }{
		{65, 64, (64*4096 - 1) / 88},       // 2978
		{65, 16384, (64*4096 - 1) / 16408}, // 15
		{65, 60, (64*4096 - 1) / 88},       // padded to 64
		{2, 65536, 1},                      // never less than one
	} {
		if got := RingWindow(tc.pages, tc.payload); got != tc.want {
			t.Errorf("RingWindow(%d, %d) = %d, want %d", tc.pages, tc.payload, got, tc.want)
		}
	}
}

// TestStreamClosedMidway: a VSP that is closed mid-stream ends it; Stream
// reports the channel closing, and counts lost what it sent and did not
// get back, not the packets it never sent.
func TestStreamClosedMidway(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, ServerConfig{}, ClientConfig{})
	go func() {
		time.Sleep(20 * time.Millisecond)
		r.srv.Close()
	}()
	res, err := r.c.Stream(context.Background(), StreamConfig{Payload: 64, Count: 1 << 22, Window: 64, Idle: time.Second})
	if err == nil {
		t.Fatalf("no error: %+v", res)
	}
	if res.Sent == 0 || res.Sent >= 1<<22 || res.Lost > res.Sent || res.Lost > 64 {
		t.Fatalf("%v: %+v; want some sent, and at most the window of 64 of them lost", err, res)
	}
	if !errors.Is(err, ErrClosed) {
		t.Logf("error: %v", err)
	}
}

func TestCheckerVerdicts(t *testing.T) {
	k := NewPacker(64)
	c := NewChecker(4, 64)
	p0 := bytes.Clone(k.Packet(0))
	if v := c.Check(p0); v != VerdictOK {
		t.Fatalf("first: %v", v)
	}
	if v := c.Check(p0); v != VerdictDuplicate {
		t.Fatalf("duplicate: %v", v)
	}
	bad := bytes.Clone(k.Packet(1))
	bad[40] ^= 1
	if v := c.Check(bad); v != VerdictCorrupt {
		t.Fatalf("flipped body bit: %v", v)
	}
	seqBad := bytes.Clone(k.Packet(2))
	binary.LittleEndian.PutUint64(seqBad, 3) // another valid number, wrong checksum
	if v := c.Check(seqBad); v != VerdictCorrupt {
		t.Fatalf("changed sequence number: %v", v)
	}
	sumBad := bytes.Clone(k.Packet(2))
	sumBad[offSum] ^= 1
	if v := c.Check(sumBad); v != VerdictCorrupt {
		t.Fatalf("changed checksum: %v", v)
	}
	if v := c.Check(k.Packet(99)); v != VerdictCorrupt {
		t.Fatalf("sequence beyond the count: %v", v)
	}
	if v := c.Check(k.Packet(3)[:20]); v != VerdictCorrupt {
		t.Fatalf("truncated: %v", v)
	}
	padded := append(bytes.Clone(k.Packet(3)), 0, 0, 0, 0, 0, 0, 0)
	if v := c.Check(padded); v != VerdictOK {
		t.Fatalf("padded: %v", v)
	}
	if v := c.Check(nil); v != VerdictCorrupt {
		t.Fatalf("empty: %v", v)
	}
	if c.Unique != 2 || c.Duplicated != 1 || c.Corrupted != 6 || c.Received != 9 || c.Lost() != 2 {
		t.Fatalf("counts %+v lost %d", *c, c.Lost())
	}
}

// TestExternalDataCompletedWithoutEcho: a GPA-direct packet gets an
// empty completion and nothing back.
func TestExternalDataCompletedWithoutEcho(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, ServerConfig{}, ClientConfig{})
	pfn, err := r.Client.Pages().Alloc(1)
	if err != nil {
		t.Fatal(err)
	}
	ext := []gpa.Range{{ByteCount: 100, PFNs: []uint64{pfn}}}
	n, err := r.c.Channel().SendSynchronousRequest([]byte("external"), ext, 0, make([]byte, 8), 5*time.Second)
	if err != nil || n != 0 {
		t.Fatalf("n %d err %v", n, err)
	}
	if r.c.Stray() != 0 {
		t.Fatal("external packet echoed")
	}
}

// TestPauseCompletesHeld: the client holds the packets it checked until
// its batch ends; a pause in the middle of a batch (which then ends
// without ProcessingComplete) completes them at its Suspend instead of
// waiting for them forever, and the stream goes on after Start.
func TestPauseCompletesHeld(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, ServerConfig{}, ClientConfig{})
	paused := make(chan error, 1)
	var once sync.Once
	hook := func(c *Client) {
		once.Do(func() {
			// A packet held; the pause begins before the loop reads
			// the batch's next packet.
			go func() { paused <- c.ch.Pause() }()
			deadline := time.Now().Add(testbus.Timeout)
			for c.ch.State() != channel.StatePaused && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		})
	}
	testHookHeld.Store(&hook)
	defer testHookHeld.Store(nil)
	type result struct {
		res StreamResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := r.c.Stream(context.Background(), StreamConfig{Payload: 64, Count: 1000, Idle: testbus.Timeout})
		done <- result{res, err}
	}()
	select {
	case err := <-paused:
		if err != nil {
			t.Fatalf("Pause: %v", err)
		}
	case <-time.After(testbus.Timeout):
		t.Fatal("Pause still waiting for the packets the client held")
	}
	if err := r.c.ch.Start(); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got.err != nil || got.res.Received != 1000 || got.res.Lost != 0 {
		t.Fatalf("the stream after the pause: %+v, %v", got.res, got.err)
	}
}
