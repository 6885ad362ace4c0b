package soak

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/govmbus/govmbus/internal/child"
	"github.com/govmbus/govmbus/internal/port"
)

// Fixed figures of a soak.
const (
	diskRegion       = 1 << 20          // bytes of the shared disk each guest verifies
	diskChunk        = 256 << 10        // bytes per disk round
	hostStartTimeout = 10 * time.Second // for the host to listen
	startTimeout     = 30 * time.Second // for every guest's first progress line
	endGrace         = 60 * time.Second // for the guests to finish after Duration
	pings            = 200              // per guest, before its load
)

// Config is one soak. The command line checks its bounds; Run trusts them.
type Config struct {
	Bin                    string // this binary: started as the host and the guests
	Guests, Channels       int    // guest processes, echo channels per guest
	Rate, Payload          int    // packets per second per channel (0: unpaced), bytes per packet
	ServiceEvery, Duration time.Duration
	RSSEvery, Warmup       time.Duration
	DiskEvery              time.Duration // each guest's pause between disk rounds
	RSSGrowth              float64       // percent
	Disk                   bool          // a blk disk, a region of it per guest
	LogDir                 string        // if not "": host.jsonl and guest-N.jsonl
}

// Result is `vmbus soak --json`, and the figures of the summary.
type Result struct {
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

	PerGuest   []GuestResult `json:"per_guest"`
	Packets    uint64        `json:"packets"`
	Bytes      uint64        `json:"bytes"`
	Sent       uint64        `json:"sent"`
	Lost       uint64        `json:"lost"`
	Duplicated uint64        `json:"duplicated"`
	Corrupted  uint64        `json:"corrupted"`
	Stray      uint64        `json:"stray"`
	DiskBytes  int64         `json:"disk_bytes"`
	Mismatches int64         `json:"mismatches"`

	Samples []Sample   `json:"samples"`
	RSS     RSSVerdict `json:"rss"`
}

// GuestResult is one guest's result line, and how it exited.
type GuestResult struct {
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

// Checks are every guest's failed checks so far, from their last
// progress lines.
type Checks struct {
	Lost, Duplicated, Corrupted uint64
	Mismatched                  int64
}

// Progress is told what happens while the soak runs, from Run's
// goroutine.
type Progress interface {
	Started(hostPid int)        // every guest's traffic flows: the clock starts
	Sampled(s Sample, c Checks) // a sample was taken
}

// Run runs the host and the guests and gathers the figures. The error is
// for a soak that could not start; what ran and went wrong is in
// Result.Failures. Every child is stopped and waited for, and the
// temporary directory removed, before it returns.
func Run(ctx context.Context, cfg Config, prog Progress) (res Result, err error) {
	res = Result{Guests: cfg.Guests, Channels: cfg.Channels, Disk: cfg.Disk, Rate: cfg.Rate, Payload: cfg.Payload,
		ServiceEveryS: cfg.ServiceEvery.Seconds(), DurationS: cfg.Duration.Seconds(), BlackoutMs: []float64{}}
	var fmu sync.Mutex
	failf := func(format string, args ...any) {
		fmu.Lock()
		res.Failures = append(res.Failures, fmt.Sprintf(format, args...))
		fmu.Unlock()
	}
	defer func() { res.Passed = err == nil && len(res.Failures) == 0 }()

	dir, err := os.MkdirTemp("", "vmbus-soak-")
	if err != nil {
		return res, fmt.Errorf("soak: %v", err)
	}
	defer os.RemoveAll(dir)
	var hostLogW io.Writer
	if cfg.LogDir != "" {
		if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
			return res, fmt.Errorf("soak: %v", err)
		}
		f, err := os.Create(filepath.Join(cfg.LogDir, "host.jsonl"))
		if err != nil {
			return res, fmt.Errorf("soak: %v", err)
		}
		// Unbuffered: a soak that dies leaves every line written so
		// far, and the lines come a few a second.
		defer f.Close()
		hostLogW = f
	}
	socket, disk := filepath.Join(dir, "bus.sock"), filepath.Join(dir, "disk.img")
	args := []string{"host", "--socket", socket, "--log-format", "json"}
	for range cfg.Channels {
		args = append(args, "--device", "echo")
	}
	if cfg.Disk {
		if err := os.WriteFile(disk, nil, 0o600); err != nil {
			return res, fmt.Errorf("soak: %v", err)
		}
		if err := os.Truncate(disk, int64(cfg.Guests)*diskRegion); err != nil {
			return res, fmt.Errorf("soak: %v", err)
		}
		args = append(args, "--device", "blk="+disk)
	}
	// The goroutines come from the host's /metrics, on a port free now;
	// each successor listens on it again.
	metricsAddr := port.Free()
	if metricsAddr != "" {
		args = append(args, "--metrics", metricsAddr)
	}

	host, err := startHost(cfg.Bin, args)
	if err != nil {
		return res, fmt.Errorf("demo: %v", err)
	}
	res.HostPid = host.proc.Pid()
	hostStopped := false
	defer func() {
		if !hostStopped {
			host.proc.Stop(0)
		}
	}()
	if err := host.listening(ctx, hostStartTimeout); err != nil {
		return res, fmt.Errorf("soak: host did not start: %v%s", err, host.proc.Tail())
	}
	fctx, fstop := context.WithCancel(context.Background())
	defer fstop()
	var followers sync.WaitGroup
	followers.Add(1)
	go func() { defer followers.Done(); host.follow(fctx, hostLogW) }()
	defer followers.Wait()
	defer fstop()

	guests := make([]*guest, cfg.Guests)
	defer func() {
		// Guests still running when the soak ends early are stopped.
		for _, g := range guests {
			if g != nil {
				g.proc.Stop(0)
				<-g.read
			}
		}
	}()
	for i := range guests {
		gargs := []string{"guest", "--socket", socket, "demo-load", "--channels", strconv.Itoa(cfg.Channels),
			"--duration", cfg.Duration.String(), "--interval", "1s", "--pings", strconv.Itoa(pings),
			"--rate", strconv.Itoa(cfg.Rate), "--payload", strconv.Itoa(cfg.Payload), "--disk=" + strconv.FormatBool(cfg.Disk)}
		if cfg.Disk {
			gargs = append(gargs, "--disk-chunk", strconv.Itoa(diskChunk), "--disk-offset", strconv.Itoa(i*diskRegion),
				"--disk-bytes", strconv.Itoa(diskRegion), "--disk-every", cfg.DiskEvery.String())
		}
		p, err := child.Start(cfg.Bin, gargs, nil)
		if err != nil {
			return res, fmt.Errorf("demo: %v", err)
		}
		g := &guest{n: i + 1, proc: p, first: make(chan struct{}), read: make(chan struct{})}
		guests[i] = g
		var w io.Writer
		if cfg.LogDir != "" {
			f, err := os.Create(filepath.Join(cfg.LogDir, fmt.Sprintf("guest-%d.jsonl", i+1)))
			if err != nil {
				return res, fmt.Errorf("soak: %v", err)
			}
			defer f.Close()
			w = f
		}
		go g.follow(w)
	}

	// The clock starts once every guest's traffic flows.
	startBy := time.NewTimer(startTimeout)
	defer startBy.Stop()
	for _, g := range guests {
		select {
		case <-g.first:
		case <-g.read:
			select {
			case <-g.first: // its whole load ran before a progress line
			default:
				return res, fmt.Errorf("soak: guest %d ended before its load started%s", g.n, g.proc.Tail())
			}
		case <-host.proc.Done():
			return res, fmt.Errorf("soak: the host exited (%v)%s", host.proc.Err(), host.proc.Tail())
		case <-startBy.C:
			return res, fmt.Errorf("soak: guest %d: no progress within %v%s", g.n, startTimeout, g.proc.Tail())
		case <-ctx.Done():
			return res, fmt.Errorf("soak: interrupted")
		}
	}
	t0 := time.Now()
	prog.Started(res.HostPid)

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
	if cfg.ServiceEvery > 0 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			last := cfg.Duration - cfg.ServiceEvery/2
			for k := 1; time.Duration(k)*cfg.ServiceEvery <= last; k++ {
				if !sleepUntilOr(t0.Add(time.Duration(k)*cfg.ServiceEvery), ending) {
					return
				}
				busy.Lock()
				ms, err := host.service(k, ending)
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
	sample := func() Sample {
		busy.Lock()
		defer busy.Unlock()
		s := sampleProcess(res.HostPid, metricsAddr)
		s.Seconds = time.Since(t0).Seconds()
		for _, g := range guests {
			g.mu.Lock()
			s.Packets += g.last.Packets
			g.mu.Unlock()
			s.GuestsMiB += sampleProcess(g.proc.Pid(), "").RSSMiB
		}
		svcMu.Lock()
		s.Servicings = res.Servicings
		svcMu.Unlock()
		return s
	}
	var samples []Sample
	record := func(final bool) {
		s := sample()
		s.Final = final
		samples = append(samples, s)
		var c Checks
		for _, g := range guests {
			g.mu.Lock()
			c.Lost, c.Duplicated, c.Corrupted, c.Mismatched = c.Lost+g.last.Lost, c.Duplicated+g.last.Duplicated,
				c.Corrupted+g.last.Corrupted, c.Mismatched+g.last.Mismatches
			g.mu.Unlock()
		}
		prog.Sampled(s, c)
	}
	record(false)
	// After the first, samples fall half a servicing interval after a
	// servicing when RSSEvery is a multiple of ServiceEvery: every one
	// sees the host as long after its exec.
	phase := cfg.ServiceEvery / 2
	if cfg.ServiceEvery == 0 || phase >= cfg.RSSEvery {
		phase = 0
	}
	nextSample := t0.Add(phase + cfg.RSSEvery)
	tick := time.NewTimer(time.Until(nextSample))
	defer tick.Stop()
	endBy := time.NewTimer(cfg.Duration + endGrace)
	defer endBy.Stop()
	hostDied := false
wait:
	for {
		select {
		case <-tick.C:
			record(false)
			nextSample = nextSample.Add(cfg.RSSEvery)
			for time.Until(nextSample) <= 0 {
				nextSample = nextSample.Add(cfg.RSSEvery) // a slow sample skips a beat
			}
			tick.Reset(time.Until(nextSample))
		case <-allRead:
			break wait
		case <-host.proc.Done():
			hostDied = true
			failf("the host exited during the soak (%v)%s", host.proc.Err(), host.proc.Tail())
			break wait
		case <-endBy.C:
			failf("the guests were not done %v after --duration", endGrace)
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
		code, why := g.proc.Stop(0)
		<-g.read
		g.mu.Lock()
		r := g.result
		g.mu.Unlock()
		gj := GuestResult{Guest: g.n, Exit: code}
		if code != 0 {
			failf("guest %d: %s", g.n, why)
		}
		if r == nil {
			failf("guest %d printed no result", g.n)
		} else {
			gj.Channels, gj.Packets, gj.Bytes, gj.Sent = r.Channels, r.Packets, r.Bytes, r.Sent
			gj.Lost, gj.Duplicated, gj.Corrupted, gj.Stray = r.Lost, r.Duplicated, r.Corrupted, r.Stray
			gj.DiskBytes, gj.Mismatches, gj.ChannelPackets, gj.Errors = r.DiskBytes, r.Mismatches, r.ChannelPackets, r.Errors
			if r.Channels != cfg.Channels {
				failf("guest %d streamed on %d channels, not %d", g.n, r.Channels, cfg.Channels)
			}
			if r.Packets == 0 || r.Packets != r.Sent {
				failf("guest %d: %d of %d packets back intact", g.n, r.Packets, r.Sent)
			}
			for c, n := range r.ChannelPackets {
				if n == 0 {
					failf("guest %d: nothing streamed on channel %d", g.n, c)
				}
			}
			if cfg.Disk && r.DiskBytes == 0 {
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
	if code, why := host.proc.Stop(0); code != 0 && !hostDied {
		failf("host: %s", why)
	}
	fstop()
	followers.Wait()
	errs, warns, firstErrors, failedServices := host.counts()
	res.HostErrorLines, res.HostWarnLines = errs, warns
	if errs > 0 {
		failf("the host logged %d errors, the first: %s", errs, strings.Join(firstErrors, " | "))
	}
	if failedServices > res.ServicingsFailed {
		res.ServicingsFailed = failedServices
	}
	if want := servicings(cfg); res.Servicings+res.ServicingsFailed < want && len(res.Failures) == 0 {
		failf("%d of %d servicings done", res.Servicings, want)
	}

	res.Samples = samples
	if len(res.BlackoutMs) > 0 {
		res.BlackoutP50ms = percentile(res.BlackoutMs, 50)
		res.BlackoutP99ms = percentile(res.BlackoutMs, 99)
		res.BlackoutMaxms = percentile(res.BlackoutMs, 100)
	}
	res.RSS = JudgeRSS(samples, cfg.Warmup, cfg.RSSGrowth)
	if res.RSS.Grew {
		failf("host RSS grew %.1f%% (median %.1f MiB in the first quarter after warm-up, %.1f MiB in the last; bound %.0f%%)",
			res.RSS.GrowthPct, res.RSS.FirstMedianMiB, res.RSS.LastMedianMiB, res.RSS.BoundPct)
	}
	return res, nil
}

// servicings is how many servicings a soak of cfg runs: one every
// cfg.ServiceEvery, none in the last half interval, where the guests may
// be finishing.
func servicings(cfg Config) int {
	if cfg.ServiceEvery <= 0 {
		return 0
	}
	return int((cfg.Duration - cfg.ServiceEvery/2) / cfg.ServiceEvery)
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
