package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/internal/guestload"
)

// Soak bounds and fixed figures.
const (
	soakMaxGuests      = 32
	soakDiskRegion     = 1 << 20          // bytes of the shared disk each guest verifies
	soakDiskChunk      = 256 << 10        // bytes per disk round
	soakStartTimeout   = 30 * time.Second // for every guest's first progress line
	soakServiceTimeout = 30 * time.Second // for one "servicing complete"
	soakEndGrace       = 60 * time.Second // for the guests to finish after --duration
	soakMinSamples     = 8                // RSS samples after warm-up the growth rule needs
	soakPings          = 200              // per guest, before its load
)

// soakConfig is the flags of `vmbus soak`.
type soakConfig struct {
	guests, channels, rate, payload int
	serviceEvery, duration          time.Duration
	rssEvery, warmup, diskEvery     time.Duration
	rssGrowth                       float64 // percent
	disk                            bool
	logDir                          string
}

// soakJSON is `vmbus soak --json`, and the figures of the summary.
type soakJSON struct {
	Passed   bool     `json:"passed"`
	Failures []string `json:"failures,omitempty"` // why not passed
	Seconds  float64  `json:"seconds"`            // from the first progress of every guest to the last result

	Guests         int     `json:"guests"`
	Channels       int     `json:"channels"` // echo channels per guest
	Disk           bool    `json:"disk"`
	Rate           int     `json:"rate"` // packets per second per channel, 0: unpaced
	Payload        int     `json:"payload"`
	ServiceEveryS  float64 `json:"service_every_s"`
	DurationS      float64 `json:"duration_s"`
	HostPid        int     `json:"host_pid"`
	HostErrorLines int     `json:"host_error_lines"`
	HostWarnLines  int     `json:"host_warn_lines"`

	Servicings       int       `json:"servicings"`
	ServicingsFailed int       `json:"servicings_failed"`
	BlackoutMs       []float64 `json:"blackout_ms"`
	BlackoutP50ms    float64   `json:"blackout_p50_ms"`
	BlackoutP99ms    float64   `json:"blackout_p99_ms"`
	BlackoutMaxms    float64   `json:"blackout_max_ms"`

	PerGuest   []soakGuestJSON `json:"per_guest"`
	Packets    uint64          `json:"packets"`
	Bytes      uint64          `json:"bytes"`
	Sent       uint64          `json:"sent"`
	Lost       uint64          `json:"lost"`
	Duplicated uint64          `json:"duplicated"`
	Corrupted  uint64          `json:"corrupted"`
	Stray      uint64          `json:"stray"`
	DiskBytes  int64           `json:"disk_bytes"`
	Mismatches int64           `json:"mismatches"`

	Samples []soakSample `json:"samples"`
	RSS     rssVerdict   `json:"rss"`
}

// soakGuestJSON is one guest's result line, and how it exited.
type soakGuestJSON struct {
	Guest          int      `json:"guest"`
	Exit           int      `json:"exit"`
	Channels       int      `json:"channels"`
	Packets        uint64   `json:"packets"`
	Bytes          uint64   `json:"bytes"`
	Sent           uint64   `json:"sent"`
	Lost           uint64   `json:"lost"`
	Duplicated     uint64   `json:"duplicated"`
	Corrupted      uint64   `json:"corrupted"`
	Stray          uint64   `json:"stray"`
	DiskBytes      int64    `json:"disk_bytes"`
	Mismatches     int64    `json:"mismatches"`
	ChannelPackets []uint64 `json:"channel_packets"`
	Errors         []string `json:"errors,omitempty"`
}

// soakSample is one look at the host process (the same pid across every
// servicing: the exec keeps it) and the guests.
type soakSample struct {
	Seconds    float64 `json:"seconds"`
	RSSMiB     float64 `json:"rss_mib"`    // the host's VmRSS
	FDs        int     `json:"fds"`        // the host's open descriptors
	Threads    int     `json:"threads"`    // the host's threads
	Goroutines int     `json:"goroutines"` // the host's, from its /metrics; -1 if the scrape failed
	GuestsMiB  float64 `json:"guests_rss_mib"`
	Servicings int     `json:"servicings"` // completed so far
	Packets    uint64  `json:"packets"`    // every guest's, from their last progress lines
	// Final marks the sample taken once the guests are done: it shows
	// the host without its load and is not judged for growth.
	Final bool `json:"final,omitempty"`
}

// rssVerdict is the memory rule: the median RSS of the last quarter of
// the samples after the warm-up (and before the guests are done) may
// exceed that of the first quarter by at most the bound.
type rssVerdict struct {
	Judged         bool    `json:"judged"`
	WarmupS        float64 `json:"warmup_s"`
	Samples        int     `json:"samples"` // after the warm-up
	FirstMedianMiB float64 `json:"first_quarter_median_mib"`
	LastMedianMiB  float64 `json:"last_quarter_median_mib"`
	GrowthPct      float64 `json:"growth_pct"`
	BoundPct       float64 `json:"bound_pct"`
	Grew           bool    `json:"grew"` // beyond the bound
}

// judgeRSS applies the memory rule to samples.
func judgeRSS(samples []soakSample, warmup time.Duration, boundPct float64) rssVerdict {
	v := rssVerdict{WarmupS: warmup.Seconds(), BoundPct: boundPct}
	var rss []float64
	for _, s := range samples {
		if s.Seconds >= warmup.Seconds() && !s.Final {
			rss = append(rss, s.RSSMiB)
		}
	}
	v.Samples = len(rss)
	if len(rss) < soakMinSamples {
		return v
	}
	q := len(rss) / 4
	v.Judged = true
	v.FirstMedianMiB, v.LastMedianMiB = median(rss[:q]), median(rss[len(rss)-q:])
	v.GrowthPct = (v.LastMedianMiB/v.FirstMedianMiB - 1) * 100
	v.Grew = v.GrowthPct > boundPct
	return v
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile is the nearest-rank p-th percentile of xs, 0 if empty.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func newSoakCmd() *cobra.Command {
	var (
		cfg    soakConfig
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "soak [--guests N] [--channels N] [--service-every D] [--duration D] [--rss-every D] [--rate N] [--json]",
		Short: "Run many guests against one host for a long time, servicing it all along; check every packet and the host's memory",
		Long: `Starts a host (--channels echo devices and a blk disk in a temporary file)
and --guests guest processes of this binary. Each guest streams numbered,
checksummed packets on each of its echo channels at --rate packets per
second per channel, and writes, reads back and compares rounds in a 1 MiB
region of the disk of its own, for --duration. Meanwhile the host is
serviced (SIGHUP: saved and re-executed in place, same pid) every
--service-every, and every --rss-every the host's VmRSS, descriptors,
threads and goroutines are sampled. Then a summary: servicings and their
blackouts, packets per guest, losses, and the RSS curve; with --json one
JSON object instead.

Exit status 1 if any packet was lost, duplicated or corrupted, a disk byte
mismatched, a servicing failed or the host logged an error, a process
died, or the host's memory grew: the median RSS of the last quarter of the
samples taken after --warmup more than --rss-growth percent above the
median of their first quarter (judged with at least 8 such samples).
--log-dir keeps the host's JSON log, each guest's progress lines and the
result as JSON (soak.json).`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.guests < 1 || cfg.guests > soakMaxGuests || cfg.channels < 1 || cfg.channels > maxEchoChannels ||
				cfg.duration <= 0 || cfg.serviceEvery < 0 || (cfg.serviceEvery > 0 && cfg.serviceEvery < 500*time.Millisecond) ||
				cfg.rssEvery < 100*time.Millisecond || cfg.warmup < 0 || cfg.rate < 0 || cfg.diskEvery < 0 || cfg.rssGrowth <= 0 ||
				cfg.payload < 16 || cfg.payload > 64<<10 {
				return usageErrorf("soak: want 1 <= --guests <= %d, 1 <= --channels <= %d, --duration > 0, --service-every 0 or >= 500ms, --rss-every >= 100ms, "+
					"--warmup, --rate, --disk-every >= 0, --rss-growth > 0, 16 <= --payload <= 65536", soakMaxGuests, maxEchoChannels)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			out := cmd.OutOrStdout()
			prog := out
			if asJSON {
				prog = cmd.ErrOrStderr()
			}
			res, err := runSoak(ctx, cfg, prog)
			if err != nil {
				return err
			}
			if cfg.logDir != "" {
				b, err := json.MarshalIndent(res, "", "  ")
				if err == nil {
					err = os.WriteFile(filepath.Join(cfg.logDir, "soak.json"), append(b, '\n'), 0o644)
				}
				if err != nil {
					return failuref("soak: %v", err)
				}
			}
			if asJSON {
				if err := printJSON(out, res); err != nil {
					return err
				}
			} else {
				printSoakSummary(out, res)
			}
			if !res.Passed {
				return failuref("soak: failed: %s", strings.Join(res.Failures, "; "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.guests, "guests", 8, "guest processes")
	f.IntVar(&cfg.channels, "channels", 8, "echo channels per guest, each streaming")
	f.DurationVar(&cfg.serviceEvery, "service-every", 10*time.Second, "service the host this often (0: never)")
	f.DurationVar(&cfg.duration, "duration", 30*time.Minute, "run the load this long")
	f.DurationVar(&cfg.rssEvery, "rss-every", 30*time.Second, "sample the host's RSS, descriptors and goroutines this often")
	f.DurationVar(&cfg.warmup, "warmup", 2*time.Minute, "samples before this are not judged for growth")
	f.Float64Var(&cfg.rssGrowth, "rss-growth", 20, "percent the late RSS median may exceed the early one")
	f.IntVar(&cfg.rate, "rate", 1000, "packets per second per channel (0: as fast as they come back)")
	f.IntVar(&cfg.payload, "payload", 256, "bytes per stream packet")
	f.BoolVar(&cfg.disk, "disk", true, "verify a disk region per guest beside the streams")
	f.DurationVar(&cfg.diskEvery, "disk-every", time.Second, "each guest pauses this long between disk rounds")
	f.StringVar(&cfg.logDir, "log-dir", "", "keep host.jsonl (the host's log), guest-N.jsonl (progress lines) and soak.json (the result) in this directory")
	f.BoolVar(&asJSON, "json", false, "print one JSON object (progress lines go to stderr)")
	return cmd
}

// soakGuest is one guest process and what it printed.
type soakGuest struct {
	n     int
	child *demoChild
	first chan struct{} // closed at its first progress line
	read  chan struct{} // closed when its stdout ended

	mu     sync.Mutex
	last   guestload.Line  // its last progress line
	result *guestload.Line // its result line
}

// follow reads the guest's stdout lines until they end, keeping a copy in
// w if not nil.
func (g *soakGuest) follow(w io.Writer) {
	defer close(g.read)
	var once sync.Once
	for l := range g.child.lines {
		if w != nil {
			fmt.Fprintln(w, l)
		}
		var m guestload.Line
		if json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		g.mu.Lock()
		switch m.Type {
		case guestload.TypeProgress:
			g.last = m
			once.Do(func() { close(g.first) })
		case guestload.TypeResult:
			g.result = &m
			g.last = m
		}
		g.mu.Unlock()
	}
}

// soakHostLog follows the host's JSON log.
type soakHostLog struct {
	complete chan logEntry // "servicing complete" lines

	mu             sync.Mutex
	errors, warns  int
	firstErrors    []string
	failedServices int
}

func (h *soakHostLog) follow(ctx context.Context, c *demoChild, w io.Writer) {
	enc := json.NewEncoder(io.Discard)
	if w != nil {
		enc = json.NewEncoder(w)
	}
	for {
		select {
		case l := <-c.logs:
			enc.Encode(l) //nolint:errcheck // a copy; the soak goes on without it
			msg, _ := l["msg"].(string)
			h.mu.Lock()
			switch l["level"] {
			case "ERROR":
				h.errors++
				if len(h.firstErrors) < 5 {
					b, _ := json.Marshal(l)
					h.firstErrors = append(h.firstErrors, string(b))
				}
			case "WARN":
				h.warns++
			}
			if strings.HasPrefix(msg, "servicing failed") {
				h.failedServices++
			}
			h.mu.Unlock()
			if msg == "servicing complete" {
				select {
				case h.complete <- l:
				default: // nobody waits for it: the soak is ending
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

// runSoak runs the host and the guests and gathers the figures. The error
// is for a soak that could not start; what ran and went wrong is in
// Failures. Every child is stopped and waited for, and the temporary
// directory removed, before it returns.
func runSoak(ctx context.Context, cfg soakConfig, prog io.Writer) (res soakJSON, err error) {
	res = soakJSON{Guests: cfg.guests, Channels: cfg.channels, Disk: cfg.disk, Rate: cfg.rate, Payload: cfg.payload,
		ServiceEveryS: cfg.serviceEvery.Seconds(), DurationS: cfg.duration.Seconds(), BlackoutMs: []float64{}}
	var fmu sync.Mutex
	failf := func(format string, args ...any) {
		fmu.Lock()
		res.Failures = append(res.Failures, fmt.Sprintf(format, args...))
		fmu.Unlock()
	}
	defer func() { res.Passed = err == nil && len(res.Failures) == 0 }()

	bin, err := os.Executable()
	if err != nil {
		return res, failuref("soak: own binary: %v", err)
	}
	dir, err := os.MkdirTemp("", "vmbus-soak-")
	if err != nil {
		return res, failuref("soak: %v", err)
	}
	defer os.RemoveAll(dir)
	var hostLogW io.Writer
	if cfg.logDir != "" {
		if err := os.MkdirAll(cfg.logDir, 0o755); err != nil {
			return res, failuref("soak: %v", err)
		}
		f, err := os.Create(filepath.Join(cfg.logDir, "host.jsonl"))
		if err != nil {
			return res, failuref("soak: %v", err)
		}
		// Unbuffered: a soak that dies leaves every line written so
		// far, and the lines come a few a second.
		defer f.Close()
		hostLogW = f
	}
	socket, disk := filepath.Join(dir, "bus.sock"), filepath.Join(dir, "disk.img")
	args := []string{"host", "--socket", socket, "--log-format", "json"}
	for range cfg.channels {
		args = append(args, "--device", "echo")
	}
	if cfg.disk {
		if err := os.WriteFile(disk, nil, 0o600); err != nil {
			return res, failuref("soak: %v", err)
		}
		if err := os.Truncate(disk, int64(cfg.guests)*soakDiskRegion); err != nil {
			return res, failuref("soak: %v", err)
		}
		args = append(args, "--device", "blk="+disk)
	}
	// The goroutines come from the host's /metrics, on a port free now;
	// each successor listens on it again.
	metricsAddr := freeLocalAddr()
	if metricsAddr != "" {
		args = append(args, "--metrics", metricsAddr)
	}

	host, err := startDemoChild(bin, args...)
	if err != nil {
		return res, err
	}
	res.HostPid = host.cmd.Process.Pid
	hostStopped := false
	defer func() {
		if !hostStopped {
			host.stop(0)
		}
	}()
	if _, err := host.waitLog(ctx, "host listening", demoStartTimeout); err != nil {
		return res, failuref("soak: host did not start: %v%s", err, host.tail())
	}
	fctx, fstop := context.WithCancel(context.Background())
	defer fstop()
	hlog := &soakHostLog{complete: make(chan logEntry, 1)}
	var followers sync.WaitGroup
	followers.Add(1)
	go func() { defer followers.Done(); hlog.follow(fctx, host, hostLogW) }()
	defer followers.Wait()
	defer fstop()

	guests := make([]*soakGuest, cfg.guests)
	defer func() {
		// Guests still running when the soak ends early are stopped.
		for _, g := range guests {
			if g != nil {
				g.child.stop(0)
				<-g.read
			}
		}
	}()
	for i := range guests {
		gargs := []string{"guest", "--socket", socket, "demo-load", "--channels", strconv.Itoa(cfg.channels),
			"--duration", cfg.duration.String(), "--interval", "1s", "--pings", strconv.Itoa(soakPings),
			"--rate", strconv.Itoa(cfg.rate), "--payload", strconv.Itoa(cfg.payload), "--disk=" + strconv.FormatBool(cfg.disk)}
		if cfg.disk {
			gargs = append(gargs, "--disk-chunk", strconv.Itoa(soakDiskChunk), "--disk-offset", strconv.Itoa(i*soakDiskRegion),
				"--disk-bytes", strconv.Itoa(soakDiskRegion), "--disk-every", cfg.diskEvery.String())
		}
		c, err := startDemoChild(bin, gargs...)
		if err != nil {
			return res, err
		}
		g := &soakGuest{n: i + 1, child: c, first: make(chan struct{}), read: make(chan struct{})}
		guests[i] = g
		var w io.Writer
		if cfg.logDir != "" {
			f, err := os.Create(filepath.Join(cfg.logDir, fmt.Sprintf("guest-%d.jsonl", i+1)))
			if err != nil {
				return res, failuref("soak: %v", err)
			}
			defer f.Close()
			w = f
		}
		go g.follow(w)
	}

	// The clock starts once every guest's traffic flows.
	startBy := time.NewTimer(soakStartTimeout)
	defer startBy.Stop()
	for _, g := range guests {
		select {
		case <-g.first:
		case <-g.read:
			return res, failuref("soak: guest %d ended before its load started%s", g.n, g.child.tail())
		case <-host.done:
			return res, failuref("soak: the host exited (%v)%s", host.err, host.tail())
		case <-startBy.C:
			return res, failuref("soak: guest %d: no progress within %v%s", g.n, soakStartTimeout, g.child.tail())
		case <-ctx.Done():
			return res, failuref("soak: interrupted")
		}
	}
	t0 := time.Now()
	fmt.Fprintf(prog, "soak: host pid %d, %d guests × %d echo channels%s, servicing every %v, for %v\n",
		res.HostPid, cfg.guests, cfg.channels, map[bool]string{true: " + blk", false: ""}[cfg.disk], cfg.serviceEvery, cfg.duration)

	// The end: every guest's stdout ended, or a process died, or ctx.
	allRead := make(chan struct{})
	go func() {
		for _, g := range guests {
			<-g.read
		}
		close(allRead)
	}()
	ending := make(chan struct{}) // closed when no more servicing may start
	var svcMu sync.Mutex
	// busy is held by a servicing under way: a sample waits for it, so
	// that the curve shows the host serving, not half exec'ed.
	var busy sync.Mutex
	var workers sync.WaitGroup
	if cfg.serviceEvery > 0 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			last := cfg.duration - cfg.serviceEvery/2
			for k := 1; time.Duration(k)*cfg.serviceEvery <= last; k++ {
				if !sleepUntilOr(t0.Add(time.Duration(k)*cfg.serviceEvery), ending) {
					return
				}
				busy.Lock()
				ms, err := soakService(host, hlog, k, ending)
				busy.Unlock()
				svcMu.Lock()
				if err != nil {
					res.ServicingsFailed++
					failf("servicing %d: %v", k, err)
				} else {
					res.Servicings++
					res.BlackoutMs = append(res.BlackoutMs, ms)
				}
				svcMu.Unlock()
				if err != nil {
					return // the host is in no state for more
				}
			}
		}()
	}
	sample := func() soakSample {
		busy.Lock()
		defer busy.Unlock()
		s := sampleProcess(res.HostPid, metricsAddr)
		s.Seconds = time.Since(t0).Seconds()
		for _, g := range guests {
			g.mu.Lock()
			s.Packets += g.last.Packets
			g.mu.Unlock()
			if g.child.cmd.Process != nil {
				s.GuestsMiB += sampleProcess(g.child.cmd.Process.Pid, "").RSSMiB
			}
		}
		svcMu.Lock()
		s.Servicings = res.Servicings
		svcMu.Unlock()
		return s
	}
	var samples []soakSample
	record := func(final bool) {
		s := sample()
		s.Final = final
		samples = append(samples, s)
		var lost, dup, corrupt uint64
		var mism int64
		for _, g := range guests {
			g.mu.Lock()
			lost, dup, corrupt, mism = lost+g.last.Lost, dup+g.last.Duplicated, corrupt+g.last.Corrupted, mism+g.last.Mismatches
			g.mu.Unlock()
		}
		gr := "?"
		if s.Goroutines >= 0 {
			gr = strconv.Itoa(s.Goroutines)
		}
		fmt.Fprintf(prog, "soak: %7.1f s  serviced %d  host RSS %.1f MiB  fds %d  threads %d  goroutines %s  packets %s  lost %d dup %d corrupt %d mismatched %d\n",
			s.Seconds, s.Servicings, s.RSSMiB, s.FDs, s.Threads, gr, siCount(float64(s.Packets)), lost, dup, corrupt, mism)
	}
	record(false)
	// After the first, samples fall half a servicing interval after a
	// servicing when --rss-every is a multiple of --service-every: every
	// one sees the host as long after its exec.
	phase := cfg.serviceEvery / 2
	if cfg.serviceEvery == 0 || phase >= cfg.rssEvery {
		phase = 0
	}
	nextSample := t0.Add(phase + cfg.rssEvery)
	tick := time.NewTimer(time.Until(nextSample))
	defer tick.Stop()
	endBy := time.NewTimer(cfg.duration + soakEndGrace)
	defer endBy.Stop()
	hostDied := false
wait:
	for {
		select {
		case <-tick.C:
			record(false)
			nextSample = nextSample.Add(cfg.rssEvery)
			for time.Until(nextSample) <= 0 {
				nextSample = nextSample.Add(cfg.rssEvery) // a slow sample skips a beat
			}
			tick.Reset(time.Until(nextSample))
		case <-allRead:
			break wait
		case <-host.done:
			hostDied = true
			failf("the host exited during the soak (%v)%s", host.err, host.tail())
			break wait
		case <-endBy.C:
			failf("the guests were not done %v after --duration", soakEndGrace)
			break wait
		case <-ctx.Done():
			failf("interrupted")
			break wait
		}
	}
	close(ending)
	workers.Wait()
	if !hostDied {
		record(true)
	}
	res.Seconds = time.Since(t0).Seconds()

	// The guests: their exit and result lines.
	for _, g := range guests {
		code, why := g.child.stop(0)
		<-g.read
		g.mu.Lock()
		r := g.result
		g.mu.Unlock()
		gj := soakGuestJSON{Guest: g.n, Exit: code}
		if code != 0 {
			failf("guest %d: %s", g.n, why)
		}
		if r == nil {
			failf("guest %d printed no result", g.n)
		} else {
			gj.Channels, gj.Packets, gj.Bytes, gj.Sent = r.Channels, r.Packets, r.Bytes, r.Sent
			gj.Lost, gj.Duplicated, gj.Corrupted, gj.Stray = r.Lost, r.Duplicated, r.Corrupted, r.Stray
			gj.DiskBytes, gj.Mismatches, gj.ChannelPackets, gj.Errors = r.DiskBytes, r.Mismatches, r.ChannelPackets, r.Errors
			if r.Channels != cfg.channels {
				failf("guest %d streamed on %d channels, not %d", g.n, r.Channels, cfg.channels)
			}
			if r.Packets == 0 || r.Packets != r.Sent {
				failf("guest %d: %d of %d packets back intact", g.n, r.Packets, r.Sent)
			}
			for c, n := range r.ChannelPackets {
				if n == 0 {
					failf("guest %d: nothing streamed on channel %d", g.n, c)
				}
			}
			if cfg.disk && r.DiskBytes == 0 {
				failf("guest %d verified no disk bytes", g.n)
			}
			for _, e := range r.Errors {
				failf("guest %d: %s", g.n, e)
			}
		}
		res.PerGuest = append(res.PerGuest, gj)
		res.Packets, res.Bytes, res.Sent = res.Packets+gj.Packets, res.Bytes+gj.Bytes, res.Sent+gj.Sent
		res.Lost, res.Duplicated, res.Corrupted, res.Stray = res.Lost+gj.Lost, res.Duplicated+gj.Duplicated, res.Corrupted+gj.Corrupted, res.Stray+gj.Stray
		res.DiskBytes, res.Mismatches = res.DiskBytes+gj.DiskBytes, res.Mismatches+gj.Mismatches
	}
	guests = nil
	if n := res.Lost + res.Duplicated + res.Corrupted + res.Stray; n > 0 || res.Mismatches > 0 {
		failf("%d lost, %d duplicated, %d corrupted, %d stray packets, %d disk bytes mismatched",
			res.Lost, res.Duplicated, res.Corrupted, res.Stray, res.Mismatches)
	}

	// The host stops cleanly, having logged no error.
	hostStopped = true
	if code, why := host.stop(0); code != 0 && !hostDied {
		failf("host: %s", why)
	}
	fstop()
	followers.Wait()
	hlog.mu.Lock()
	res.HostErrorLines, res.HostWarnLines = hlog.errors, hlog.warns
	if hlog.errors > 0 {
		failf("the host logged %d errors, the first: %s", hlog.errors, strings.Join(hlog.firstErrors, " | "))
	}
	if hlog.failedServices > res.ServicingsFailed {
		res.ServicingsFailed = hlog.failedServices
	}
	hlog.mu.Unlock()
	if want := soakServicings(cfg); res.Servicings+res.ServicingsFailed < want && len(res.Failures) == 0 {
		failf("%d of %d servicings done", res.Servicings, want)
	}

	res.Samples = samples
	if len(res.BlackoutMs) > 0 {
		res.BlackoutP50ms = percentile(res.BlackoutMs, 50)
		res.BlackoutP99ms = percentile(res.BlackoutMs, 99)
		res.BlackoutMaxms = percentile(res.BlackoutMs, 100)
	}
	res.RSS = judgeRSS(samples, cfg.warmup, cfg.rssGrowth)
	if res.RSS.Grew {
		failf("host RSS grew %.1f%% (median %.1f MiB in the first quarter after warm-up, %.1f MiB in the last; bound %.0f%%)",
			res.RSS.GrowthPct, res.RSS.FirstMedianMiB, res.RSS.LastMedianMiB, res.RSS.BoundPct)
	}
	return res, nil
}

// soakServicings is how many servicings a soak of cfg runs: one every
// cfg.serviceEvery, none in the last half interval, where the guests may
// be finishing.
func soakServicings(cfg soakConfig) int {
	if cfg.serviceEvery <= 0 {
		return 0
	}
	return int((cfg.duration - cfg.serviceEvery/2) / cfg.serviceEvery)
}

// soakService sends the host SIGHUP and waits for its n-th "servicing
// complete", returning the blackout in milliseconds.
func soakService(host *demoChild, hlog *soakHostLog, n int, ending <-chan struct{}) (float64, error) {
	if err := host.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return 0, err
	}
	t := time.NewTimer(soakServiceTimeout)
	defer t.Stop()
	select {
	case l := <-hlog.complete:
		if l["servicing"] != float64(n) {
			return 0, fmt.Errorf("the host counts servicing %v", l["servicing"])
		}
		if l["pid"] != float64(host.cmd.Process.Pid) {
			return 0, fmt.Errorf("the successor's pid %v is not the host's %d", l["pid"], host.cmd.Process.Pid)
		}
		ms, ok := l["blackout_ms"].(float64)
		if !ok {
			return 0, fmt.Errorf("no blackout_ms in the servicing complete line")
		}
		return ms, nil
	case <-host.done:
		return 0, fmt.Errorf("the host exited (%v)%s", host.err, host.tail())
	case <-t.C:
		return 0, fmt.Errorf("no servicing complete within %v%s", soakServiceTimeout, host.tail())
	case <-ending:
		return 0, fmt.Errorf("the soak ended while it ran")
	}
}

// sleepUntilOr waits until t, reporting false if stop closes first.
func sleepUntilOr(t time.Time, stop <-chan struct{}) bool {
	tm := time.NewTimer(time.Until(t))
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-stop:
		return false
	}
}

// freeLocalAddr is a loopback TCP address free a moment ago, or "" if
// none could be had.
func freeLocalAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return ""
	}
	defer l.Close()
	return l.Addr().String()
}

// sampleProcess reads pid's VmRSS and Threads from /proc/PID/status and
// counts /proc/PID/fd; with metricsAddr, the goroutines from its
// go_goroutines metric (-1 if that fails: a scrape during a blackout is
// refused).
func sampleProcess(pid int, metricsAddr string) soakSample {
	s := soakSample{Goroutines: -1}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(l, ":")
			f := strings.Fields(v)
			if len(f) == 0 {
				continue
			}
			n, _ := strconv.Atoi(f[0])
			switch k {
			case "VmRSS":
				s.RSSMiB = float64(n) / 1024 // kB
			case "Threads":
				s.Threads = n
			}
		}
	}
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.FDs = len(fds)
	}
	if metricsAddr != "" {
		s.Goroutines = scrapeGoroutines(metricsAddr)
	}
	return s
}

var soakHTTP = &http.Client{Timeout: 2 * time.Second}

func scrapeGoroutines(addr string) int {
	resp, err := soakHTTP.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			if n, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				return int(n)
			}
		}
	}
	return -1
}

// printSoakSummary prints the summary tables.
func printSoakSummary(w io.Writer, r soakJSON) {
	verdict := "PASSED: nothing lost, duplicated, corrupted or mismatched; every servicing complete; no process died; RSS within bound"
	if !r.Passed {
		verdict = "FAILED: " + strings.Join(r.Failures, "; ")
	}
	disk := ""
	if r.Disk {
		disk = " + blk"
	}
	rate := "unpaced"
	if r.Rate > 0 {
		rate = fmt.Sprintf("%d packets/s per channel", r.Rate)
	}
	fmt.Fprintf(w, "vmbus soak: %d guests × %d echo channels%s, %d-byte packets, %s, servicing every %gs, %.1f s\n",
		r.Guests, r.Channels, disk, r.Payload, rate, r.ServiceEveryS, r.Seconds)
	fmt.Fprintf(w, "servicings: %d done, %d failed; blackout p50 %.1f ms, p99 %.1f ms, max %.1f ms; host log: %d errors, %d warnings\n",
		r.Servicings, r.ServicingsFailed, r.BlackoutP50ms, r.BlackoutP99ms, r.BlackoutMaxms, r.HostErrorLines, r.HostWarnLines)
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "guest\texit\tchannels\tpackets\tbytes\tdisk verified\tlost\tdup\tcorrupt\tstray\tmismatched\t")
	for _, g := range r.PerGuest {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t\n", g.Guest, g.Exit, g.Channels, g.Packets,
			siBytes(float64(g.Bytes)), siBytes(float64(g.DiskBytes)), g.Lost, g.Duplicated, g.Corrupted, g.Stray, g.Mismatches)
	}
	fmt.Fprintf(tw, "total\t\t\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t\n", r.Packets, siBytes(float64(r.Bytes)), siBytes(float64(r.DiskBytes)),
		r.Lost, r.Duplicated, r.Corrupted, r.Stray, r.Mismatches)
	tw.Flush()
	fmt.Fprintf(w, "%s", b.String())
	b.Reset()
	fmt.Fprintf(w, "host process (pid %d, kept across every servicing):\n", r.HostPid)
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "time\tservicings\tRSS MiB\tfds\tthreads\tgoroutines\tguests' RSS MiB\tpackets\t")
	for _, s := range r.Samples {
		gr := "?"
		if s.Goroutines >= 0 {
			gr = strconv.Itoa(s.Goroutines)
		}
		at := (time.Duration(s.Seconds) * time.Second).String()
		if s.Final {
			at = "guests done " + at
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%d\t%d\t%s\t%.1f\t%d\t\n", at,
			s.Servicings, s.RSSMiB, s.FDs, s.Threads, gr, s.GuestsMiB, s.Packets)
	}
	tw.Flush()
	fmt.Fprintf(w, "%s", b.String())
	if r.RSS.Judged {
		fmt.Fprintf(w, "RSS: median %.1f MiB in the first quarter of the %d samples after the %gs warm-up, %.1f MiB in the last: %+.1f%% (bound %+.0f%%)\n",
			r.RSS.FirstMedianMiB, r.RSS.Samples, r.RSS.WarmupS, r.RSS.LastMedianMiB, r.RSS.GrowthPct, r.RSS.BoundPct)
	} else {
		fmt.Fprintf(w, "RSS: not judged: %d samples after the %gs warm-up, the rule needs %d\n", r.RSS.Samples, r.RSS.WarmupS, soakMinSamples)
	}
	fmt.Fprintln(w, verdict)
}
