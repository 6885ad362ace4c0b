package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/hosting/admin"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/ring"
)

// stallHost runs the host with echo, its admin socket, --metrics and a
// stall bound of 1s (and args), and waits for its admin socket.
func stallHost(t *testing.T, args ...string) (h *servicedHost, adm, metricsAddr string) {
	t.Helper()
	dir := t.TempDir()
	adm, metricsAddr = filepath.Join(dir, "admin.sock"), freePort(t)
	h = startJSONHost(t, vmbusBinary(t), filepath.Join(dir, "bus.sock"),
		append([]string{"--device", "echo", "--admin", adm, "--metrics", metricsAddr, "--stall-after", "1s"}, args...)...)
	waitFor(t, "admin socket", func() bool { _, err := os.Stat(adm); return err == nil })
	return h, adm, metricsAddr
}

// rawGuest is a guest that drives its echo channel's rings itself, so
// that it can misbehave.
type rawGuest struct {
	id uint64 // the guest's id on the host, once echoChannel found it
	cl *guest.Client
	ch *guest.Channel
	w  *ring.Writer
	r  *ring.Reader
}

// openRawGuest connects to socket and opens the echo channel with an
// incoming ring of inPages pages (control page included).
func openRawGuest(t *testing.T, socket string, inPages int) *rawGuest {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := guest.Dial(ctx, socket, guest.Config{MemorySize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	o, err := cl.WaitOffer(ctx, echo.InterfaceType, protocol.GUID{})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := cl.Open(ctx, o, guest.OpenOptions{OutPages: 16, InPages: inPages})
	if err != nil {
		t.Fatal(err)
	}
	g := &rawGuest{cl: cl, ch: ch}
	if g.w, err = ring.NewWriter(ch.Out); err != nil {
		t.Fatal(err)
	}
	if g.r, err = ring.NewReader(ch.In); err != nil {
		t.Fatal(err)
	}
	return g
}

// write puts n echo requests (completions requested) in the ring and
// signals the host only if signal.
func (g *rawGuest) write(t *testing.T, n int, signal bool) {
	t.Helper()
	for i := range n {
		if err := g.w.WriteInBand(uint64(i+1), ring.FlagCompletionRequested, bytes.Repeat([]byte{byte(i)}, 64)); err != nil {
			t.Fatal(err)
		}
	}
	if g.w.Commit() && signal {
		if err := g.ch.ToHost.Signal(); err != nil {
			t.Fatal(err)
		}
	}
}

// drain reads every completion in the incoming ring, without signalling.
func (g *rawGuest) drain(t *testing.T) int {
	t.Helper()
	n := 0
	var p ring.Packet
	for {
		err := g.r.Next(&p)
		if errors.Is(err, ring.ErrEmpty) {
			g.r.Commit()
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
}

// answered waits for the host's signals until want completions have come
// (a few spurious signals are allowed: a host may signal again, as the
// stall monitor does for a guest slow to read, and a signal given after
// the last drain wakes the next wait), and returns how many were read.
func (g *rawGuest) answered(t *testing.T, want int) int {
	t.Helper()
	n := 0
	for wakes := 0; n < want; wakes++ {
		if wakes == 5 {
			t.Fatalf("%d signals from the host, %d completions: want %d", wakes, n, want)
		}
		g.hostSignal(t)
		n += g.drain(t)
	}
	return n
}

// hostSignal waits, bounded, for a signal from the host.
func (g *rawGuest) hostSignal(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := g.ch.FromHost.Wait(ctx); err != nil {
		t.Fatalf("no signal from the host: %v", err)
	}
}

// echoChannel is g's echo channel as the admin API shows it; g's guest
// id is set on the way.
func echoChannel(t *testing.T, adm string, g *rawGuest) admin.Channel {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var gs []admin.Guest
	if err := admin.NewClient(adm).Do(ctx, http.MethodGet, "/v1/guests", nil, &gs); err != nil {
		t.Fatal(err)
	}
	// Each connection is a new guest: g is the last one.
	if len(gs) > 0 {
		for _, c := range gs[len(gs)-1].Channels {
			if c.Device == "echo" && c.ID == g.ch.Offer.ChannelID && c.Stats != nil {
				g.id = gs[len(gs)-1].ID
				return c
			}
		}
	}
	t.Fatalf("no echo channel %d in %+v", g.ch.Offer.ChannelID, gs)
	return admin.Channel{}
}

// waitStall waits until the admin API shows g's channel stalled for
// want ("" for not stalled).
func waitStall(t *testing.T, adm string, g *rawGuest, want string) admin.Channel {
	t.Helper()
	var c admin.Channel
	waitFor(t, "stall "+strconv.Quote(want), func() bool {
		c = echoChannel(t, adm, g)
		return c.Stall == want
	})
	return c
}

// channelMetric is family name's sample of g's echo channel (with
// label="value" among its labels, if given).
func channelMetric(t *testing.T, addr string, g *rawGuest, name, label string) float64 {
	t.Helper()
	for k, v := range scrape(t, addr) {
		if strings.HasPrefix(k, name+"{") && strings.Contains(k, `guest="`+strconv.FormatUint(g.id, 10)+`"`) &&
			strings.Contains(k, `channel="`+strconv.Itoa(int(g.ch.Offer.ChannelID))+`"`) && strings.Contains(k, label) {
			return v
		}
	}
	t.Fatalf("no %s{%s} for guest %d's channel %d", name, label, g.id, g.ch.Offer.ChannelID)
	return 0
}

// stalledMetric is govmbus_channel_stalled of g's channel for reason.
func stalledMetric(t *testing.T, addr string, g *rawGuest, reason string) float64 {
	t.Helper()
	return channelMetric(t, addr, g, "govmbus_channel_stalled", `reason="`+reason+`"`)
}

// settle makes a round trip, then waits until the host has read
// everything and unmasked interrupts on the guest's outgoing ring: its
// receive loop has looked at the ring and is going to sleep, so that a
// request written now without a signal is not seen.
func (g *rawGuest) settle(t *testing.T) {
	t.Helper()
	g.write(t, 1, true)
	if n := g.answered(t, 1); n != 1 {
		t.Fatalf("%d completions, want 1", n)
	}
	waitFor(t, "the host idle", func() bool {
		c, err := ring.Inspect(g.ch.Out)
		return err == nil && c.InterruptMask == 0 && c.ReadIndex == c.WriteIndex
	})
}

// waitStallLog waits for the host's log of a stall episode's start (or
// end) with reason.
func waitStallLog(t *testing.T, h *servicedHost, msg, reason string) logLine {
	t.Helper()
	for {
		l := h.waitMsg(t, msg)
		if l["reason"] == reason {
			return l
		}
	}
}

// withhold writes a request without signalling into an idle channel and
// waits until the host finds the signal lost, and returns the channel as
// the admin API shows it then. A host loop that looked at the ring once
// more after settle saw it unmasked answers it instead; then it tries
// again.
func (g *rawGuest) withhold(t *testing.T, adm string) admin.Channel {
	t.Helper()
	for try := 0; try < 5; try++ {
		g.settle(t)
		before := echoChannel(t, adm, g).Stats.PacketsIn
		g.write(t, 1, false)
		var c admin.Channel
		waitFor(t, "a lost signal, or the request read", func() bool {
			c = echoChannel(t, adm, g)
			return c.Stall == channel.StallLostSignal || c.Stats.PacketsIn > before
		})
		if c.Stall == channel.StallLostSignal {
			return c
		}
		g.hostSignal(t)
		g.drain(t)
	}
	t.Fatal("the host read every request written without a signal")
	return admin.Channel{}
}

// TestE2EStallReasons provokes, through the built host, the stalls a
// misbehaving guest can cause, and finds each in the admin API, the
// metrics and the log: a guest that withholds its signal (lost-signal,
// which ends when it signals), one that stops reading (peer-not-reading)
// and one that ignores the host's pending send size
// (pending-send-ignored). Without --unstick nothing is signalled again.
func TestE2EStallReasons(t *testing.T) {
	h, adm, addr := stallHost(t)

	g := openRawGuest(t, h.socket, 8)
	c := g.withhold(t, adm)
	if v := stalledMetric(t, addr, g, channel.StallLostSignal); v != 1 {
		t.Fatalf("govmbus_channel_stalled{reason=lost-signal} %v, want 1", v)
	}
	if v := stalledMetric(t, addr, g, channel.StallPeerNotReading); v != 0 {
		t.Fatalf("govmbus_channel_stalled{reason=peer-not-reading} %v, want 0", v)
	}
	l := waitStallLog(t, h, "channel stalled", channel.StallLostSignal)
	in, _ := l["in"].(map[string]any)
	if in == nil || in["write"] == in["read"] {
		t.Fatalf("stall log without the unread request between the incoming ring's indices: %v", l)
	}
	if c.Stats.Unstuck != 0 {
		t.Fatalf("without --unstick: %d unstuck, want none", c.Stats.Unstuck)
	}
	// The guest signals at last: the request is answered, the stall ends.
	if err := g.ch.ToHost.Signal(); err != nil {
		t.Fatal(err)
	}
	if n := g.answered(t, 1); n != 1 {
		t.Fatalf("%d completions, want 1", n)
	}
	waitStall(t, adm, g, "")
	waitStallLog(t, h, "channel stall ended", channel.StallLostSignal)

	// A guest that stops reading.
	g = openRawGuest(t, h.socket, 8)
	g.write(t, 1, true)
	g.hostSignal(t)
	c = waitStall(t, adm, g, channel.StallPeerNotReading)
	if c.Stats.OutRingUsed == 0 {
		t.Fatalf("peer-not-reading with an empty outgoing ring: %+v", c.Stats)
	}
	if v := stalledMetric(t, addr, g, channel.StallPeerNotReading); v != 1 {
		t.Fatalf("govmbus_channel_stalled{reason=peer-not-reading} %v, want 1", v)
	}
	// And in top's table, on the guest's echo row.
	out, err := exec.Command(vmbusBinary(t), "top", "--admin", adm, "--interval", "100ms", "--count", "1", "--sort", "s").Output()
	if err != nil {
		t.Fatalf("top: %v", err)
	}
	row := ""
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[0] == strconv.FormatUint(g.id, 10) && f[1] == "echo" && f[2] == strconv.Itoa(int(c.ID)) {
			row = l
		}
	}
	if !strings.HasSuffix(row, " "+channel.StallPeerNotReading) {
		t.Fatalf("top's row of guest %d's echo channel %q does not end in the stall:\n%s", g.id, row, out)
	}

	// A guest whose small ring fills with completions, and which reads
	// them without the signal the host's pending send size asks for.
	g = openRawGuest(t, h.socket, 2)
	g.write(t, 60, true)
	waitFor(t, "completions queued behind the full ring", func() bool { return echoChannel(t, adm, g).Stats.Queued > 0 })
	if n := g.drain(t); n == 0 || n == 60 {
		t.Fatalf("the guest read %d completions: want a full ring's worth, not all 60", n)
	}
	c = waitStall(t, adm, g, channel.StallPendingSendIgnored)
	if v := stalledMetric(t, addr, g, channel.StallPendingSendIgnored); v != 1 {
		t.Fatalf("govmbus_channel_stalled{reason=pending-send-ignored} %v, want 1", v)
	}
	waitStallLog(t, h, "channel stalled", channel.StallPendingSendIgnored)
}

// TestE2EUnstick: with --unstick the host recovers a guest that withheld
// its signal (the request is answered, the re-signal counted in the
// admin API, the metrics and the log), and signals nothing for a guest
// that stops reading.
func TestE2EUnstick(t *testing.T) {
	h, adm, addr := stallHost(t, "--unstick")

	g := openRawGuest(t, h.socket, 8)
	var c admin.Channel
	for try := 0; ; try++ {
		g.settle(t)
		g.write(t, 1, false)
		// The completion of the request the host was not told of.
		if n := g.answered(t, 1); n != 1 {
			t.Fatalf("%d completions, want 1", n)
		}
		// A host loop that looked at the ring once more after the
		// settle's unmask saw the request with no signal to lose.
		if c = echoChannel(t, adm, g); c.Stats.Unstuck != 0 || try == 4 {
			break
		}
	}
	if c.Stats.Unstuck != 1 {
		t.Fatalf("unstuck %d, want 1", c.Stats.Unstuck)
	}
	if v := channelMetric(t, addr, g, "govmbus_channel_unstuck_total", ""); v != 1 {
		t.Fatalf("govmbus_channel_unstuck_total %v, want 1", v)
	}
	waitStallLog(t, h, "channel stalled", channel.StallLostSignal)
	h.waitMsg(t, "channel signalled again (lost signal)")

	g = openRawGuest(t, h.socket, 8)
	g.write(t, 1, true)
	g.hostSignal(t)
	c = waitStall(t, adm, g, channel.StallPeerNotReading)
	if c.Stats.Unstuck != 0 {
		t.Fatalf("peer-not-reading signalled again %d times: only a lost signal is", c.Stats.Unstuck)
	}
}

// parseRate reads a rate as top prints it (1500, 15k, 2.5M; 3.0MiB).
func parseRate(t *testing.T, s string) float64 {
	t.Helper()
	mult := 1.0
	for _, u := range []struct {
		suffix string
		m      float64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}, {"M", 1e6}, {"k", 1e3}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("rate %q: %v", s, err)
	}
	return v * mult
}

// TestE2ETopSnapshot: vmbus top on a pipe prints --count plain tables, one
// per interval, listing the guest's echo channel active with rates that
// fit the stream the guest runs through it (as many packets back as out,
// about the payload per packet).
func TestE2ETopSnapshot(t *testing.T) {
	h, adm, _ := stallHost(t)
	bin := vmbusBinary(t)
	ctx, cancel := context.WithCancel(context.Background())
	g := exec.CommandContext(ctx, bin, "guest", "--socket", h.socket, "stream", "--payload", "256", "--count", "1000000000")
	g.Cancel = func() error { return g.Process.Signal(syscall.SIGTERM) }
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		g.Wait() //nolint:errcheck // ended by the test
	}()
	waitFor(t, "the stream's channel open", func() bool {
		var gs []admin.Guest
		c, cc := context.WithTimeout(context.Background(), 10*time.Second)
		defer cc()
		if err := admin.NewClient(adm).Do(c, http.MethodGet, "/v1/guests", nil, &gs); err != nil {
			t.Fatal(err)
		}
		for _, g := range gs {
			for _, c := range g.Channels {
				if c.Device == "echo" && c.Stats != nil && c.Stats.PacketsIn > 0 {
					return true
				}
			}
		}
		return false
	})
	top := exec.Command(bin, "top", "--admin", adm, "--interval", "500ms", "--count", "2")
	var out, errb bytes.Buffer
	top.Stdout, top.Stderr = &out, &errb
	if err := top.Run(); err != nil {
		t.Fatalf("top: %v: %s", err, errb.String())
	}
	tables := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n\n")
	if len(tables) != 2 {
		t.Fatalf("%d tables, want 2:\n%s", len(tables), out.String())
	}
	lines := strings.Split(tables[1], "\n")
	if !strings.HasPrefix(lines[0], "vmbus top  pid ") || !strings.HasPrefix(lines[1], "GUEST") {
		t.Fatalf("table without its title and columns:\n%s", tables[1])
	}
	var row []string
	for _, l := range lines[2:] {
		if f := strings.Fields(l); len(f) > 8 && f[1] == "echo" && f[2] != "0" {
			row = f
		}
	}
	if row == nil {
		t.Fatalf("no open echo channel in\n%s", tables[1])
	}
	if row[3] != "Active" {
		t.Fatalf("echo channel %s, want Active: %q", row[3], row)
	}
	pin, pout, bin2, bout := parseRate(t, row[4]), parseRate(t, row[5]), parseRate(t, row[6]), parseRate(t, row[7])
	if pin < 100 || pout < pin/2 || pout > pin*2 {
		t.Fatalf("packets/s in %v, out %v: want a stream's, as many back as out: %q", pin, pout, row)
	}
	// 256-byte payloads, and the rounding of the printed figures.
	if per := bin2 / pin; per < 200 || per > 300 {
		t.Fatalf("%v bytes per packet in, want about 256: %q", per, row)
	}
	if per := bout / pout; per < 200 || per > 300 {
		t.Fatalf("%v bytes per packet out, want about 256: %q", per, row)
	}
}
