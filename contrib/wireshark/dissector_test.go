// Package wireshark_test runs the Lua dissector in this directory under
// tshark on captures the project makes. .ci/run installs tshark; the
// tests are skipped only where it is missing.
package wireshark_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/govmbus/govmbus/capture"
	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/hosting/stdkinds"
	"github.com/govmbus/govmbus/protocol"
)

// tshark runs tshark with the dissector on path and returns one row per
// frame of the given fields (tab-separated, as -T fields prints them).
func tshark(t *testing.T, path string, fields ...string) [][]string {
	t.Helper()
	bin, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not installed (.ci/run installs it)")
	}
	lua, err := filepath.Abs("vmbus.lua")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-2", "-X", "lua_script:" + lua, "-r", path, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // no personal plugins or profiles
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	var rows [][]string
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" || strings.HasPrefix(line, "Running as user") {
			continue
		}
		if strings.Contains(line, "Lua Error") || strings.Contains(line, "Malformed") {
			t.Fatalf("tshark: %s", line)
		}
		rows = append(rows, strings.Split(line, "\t"))
	}
	return rows
}

// TestDissectorScriptedRun: a guest connects to a daemon that captures
// its bus, gets its offers, creates a GPADL, opens the echo channel,
// pings 5 times and closes; tshark decodes the capture to the control
// messages of that run, the echo requests and their completions by
// sequence number, and matches each completion to its request.
func TestDissectorScriptedRun(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark not installed (.ci/run installs it)")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "run.pcapng")
	cfg := hosting.Config{Socket: filepath.Join(dir, "bus.sock"), Kinds: stdkinds.Registry(), Devices: []string{"echo"},
		Capture: hosting.CaptureConfig{Path: path}}
	d, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Serve(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := guest.Dial(ctx, cfg.Socket, guest.Config{MemorySize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	c, err := echo.Open(ctx, cl, echo.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.Ping(ctx, 5, 64, 10*time.Second); err != nil || r.Received != 5 {
		t.Fatalf("ping: %+v %v", r, err)
	}
	c.Close()
	cl.Close()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	rows := tshark(t, path, "frame.number", "vmbus.dir", "vmbus.msg.type", "vmbus.channel", "vmbus.pkt.type",
		"vmbus.pkt.txid", "vmbus.echo.seq", "vmbus.pkt.request_in", "vmbus.msg.offer.type", "vmbus.pkt.response_in")
	var in, out []string
	requests := map[string]string{}    // echo seq → frame of the request
	completions := map[string]string{} // echo seq → request_in of its completion
	responseIn := map[string]string{}  // frame of a request → its response's frame
	offer := ""
	for _, r := range rows {
		frame, dir, msg, ch, ptype, seq, reqIn, offerType, respIn := r[0], r[1], r[2], r[3], r[4], r[6], r[7], r[8], r[9]
		if msg != "" {
			name := protocol.MessageType(atoi(t, msg)).String()
			if dir == "0" {
				in = append(in, name)
			} else {
				out = append(out, name)
			}
			if offerType != "" {
				offer = offerType
				if ch != "1" {
					t.Errorf("OfferChannel frame %s: channel %q", frame, ch)
				}
			}
		}
		switch {
		case ptype == "6" && dir == "0":
			requests[seq] = frame
			responseIn[frame] = respIn
		case ptype == "11" && dir == "1":
			completions[seq] = reqIn
		}
	}
	for _, want := range []string{"InitiateContact", "RequestOffers", "GpadlHeader", "GpadlBody", "OpenChannel", "CloseChannel", "GpadlTeardown"} {
		if !slices.Contains(in, want) {
			t.Errorf("guest→host messages %v: no %s", in, want)
		}
	}
	for _, want := range []string{"VersionResponse", "OfferChannel", "AllOffersDelivered", "GpadlCreated", "OpenChannelResult", "GpadlTorndown"} {
		if !slices.Contains(out, want) {
			t.Errorf("host→guest messages %v: no %s", out, want)
		}
	}
	if offer != echo.InterfaceType.String() {
		t.Errorf("offer type %q, want %v", offer, echo.InterfaceType)
	}
	for seq := range 5 {
		s := strconv.Itoa(seq)
		req, ok := requests[s]
		if !ok || completions[s] != req {
			t.Errorf("echo %d: request in frame %q, its completion names %q", seq, req, completions[s])
		}
		if ok && responseIn[req] == "" {
			t.Errorf("echo %d: request frame %s names no response", seq, req)
		}
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	if i := strings.IndexByte(s, ','); i >= 0 {
		s = s[:i]
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// allMessages is one message of every type package protocol encodes.
func allMessages() []protocol.Message {
	g := protocol.MustParseGUID("01234567-89ab-cdef-0123-456789abcdef")
	return []protocol.Message{
		&protocol.OfferChannel{InterfaceType: g, ChannelID: 3, MonitorID: 0xFF, ConnectionID: 0x2003, Flags: protocol.OfferFlagNamedPipeMode},
		&protocol.RescindChannelOffer{ChannelID: 3},
		&protocol.RequestOffers{},
		&protocol.AllOffersDelivered{},
		&protocol.OpenChannel{ChannelID: 3, OpenID: 3, RingGpadlID: 0xE1E10, DownstreamRingPageOffset: 2},
		&protocol.OpenChannelResult{ChannelID: 3, OpenID: 3},
		&protocol.CloseChannel{ChannelID: 3},
		&protocol.GpadlHeader{ChannelID: 3, GpadlID: 0xE1E10, RangeBufferLen: 24, RangeCount: 1, Data: []uint64{0x2000_0000_0000, 0x1234}},
		&protocol.GpadlBody{GpadlID: 0xE1E10, Data: []uint64{0x1235, 0x1236}},
		&protocol.GpadlCreated{ChannelID: 3, GpadlID: 0xE1E10},
		&protocol.GpadlTeardown{ChannelID: 3, GpadlID: 0xE1E10},
		&protocol.GpadlTorndown{GpadlID: 0xE1E10},
		&protocol.RelIDReleased{ChannelID: 3},
		&protocol.InitiateContact{VersionRequested: protocol.VersionCopper, MessageSINT: 2, Features: 0x21},
		&protocol.VersionResponse{VersionSupported: true, VersionOrConnectionID: 1},
		&protocol.Unload{},
		&protocol.UnloadComplete{},
		&protocol.OpenReservedChannel{ChannelID: 3},
		&protocol.CloseReservedChannel{ChannelID: 3},
		&protocol.CloseReservedResponse{ChannelID: 3},
		&protocol.TLConnectRequest{EndpointID: g, ServiceID: g},
		&protocol.ModifyChannel{ChannelID: 3, TargetVP: 1},
		&protocol.TLConnectRequestResult{EndpointID: g, ServiceID: g},
		&protocol.ModifyChannelResponse{ChannelID: 3},
		&protocol.ModifyConnection{ParentToChildMonitorPage: 0x1000},
		&protocol.ModifyConnectionResponse{},
		&protocol.Pause{},
		&protocol.PauseResponse{},
		&protocol.Resume{},
	}
}

// TestDissectorEveryMessageType: a capture of one message of every type
// the project encodes, and of a GPA-direct and a transfer-page packet
// and an IC message on a pipe channel, decodes to every type, with the
// channel ids of the messages that name one and the ranges of the
// packets.
func TestDissectorEveryMessageType(t *testing.T) {
	path := filepath.Join(t.TempDir(), "all.pcapng")
	w, err := capture.Create(path, capture.Options{})
	if err != nil {
		t.Fatal(err)
	}
	msgs := allMessages()
	for _, m := range msgs {
		w.Control(1, capture.In, protocol.Marshal(m))
	}
	// WIRE.md §8's GPA-direct packet: two ranges.
	ranges := []byte{0, 0, 0, 0, 2, 0, 0, 0, 0x20, 0, 0, 0, 0x10, 0, 0, 0, 0x45, 0x23, 1, 0, 0, 0, 0, 0,
		0, 0x10, 0, 0, 0, 0, 0, 0, 0x46, 0x23, 1, 0, 0, 0, 0, 0}
	w.Packet(1, 3, capture.In, 9, 1, 7, ranges, []byte{0xca, 0xfe}, nil)
	xfer := []byte{1, 0, 1, 0, 1, 0, 0, 0, 0x40, 0, 0, 0, 0x80, 0, 0, 0}
	w.Packet(1, 3, capture.Out, 7, 1, 8, xfer, nil, nil)
	// An IC heartbeat on the pipe channel 3 (offered above with pipe
	// mode): pipe header, IC header of type 1, an 8-byte body.
	ic := []byte{1, 0, 0, 0, 28, 0, 0, 0, 3, 0, 0, 0, 1, 0, 3, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 3, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0}
	w.Packet(1, 3, capture.Out, 6, 1, 9, nil, ic, nil)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rows := tshark(t, path, "vmbus.msg.type", "vmbus.channel", "vmbus.pkt.gpa.pfn", "vmbus.pkt.xfer.offset", "vmbus.pipe.type", "vmbus.ic.type")
	if len(rows) != len(msgs)+3 {
		t.Fatalf("%d frames, want %d", len(rows), len(msgs)+3)
	}
	for i, m := range msgs {
		if got := rows[i][0]; got != strconv.Itoa(int(m.Type())) {
			t.Errorf("frame %d: message type %q, want %d (%v)", i+1, got, m.Type(), m.Type())
		}
	}
	if seen := map[string]bool{}; true {
		for _, r := range rows[:len(msgs)] {
			seen[r[0]] = true
		}
		for typ := protocol.TypeOfferChannel; typ <= protocol.TypeResume; typ++ {
			if !seen[strconv.Itoa(int(typ))] {
				t.Errorf("message type %v never decoded", typ)
			}
		}
	}
	if ch := rows[4][1]; ch != "3" { // OpenChannel
		t.Errorf("OpenChannel channel %q", ch)
	}
	gpa, tp, pipe := rows[len(msgs)], rows[len(msgs)+1], rows[len(msgs)+2]
	if gpa[2] != "0x0000000000012345,0x0000000000012346" {
		t.Errorf("GPA-direct PFNs %q", gpa[2])
	}
	if tp[3] != "128" {
		t.Errorf("transfer range offset %q", tp[3])
	}
	if pipe[4] != "1" || pipe[5] != "1" {
		t.Errorf("pipe type %q, IC type %q", pipe[4], pipe[5])
	}
}
