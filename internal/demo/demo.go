package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/govmbus/govmbus/internal/child"
	"github.com/govmbus/govmbus/internal/guestload"
)

// Fixed figures of the demo.
const (
	diskSize     = 8 << 20          // bytes of the blk disk's temporary file
	startTimeout = 10 * time.Second // for the host to listen
	guestGrace   = 10 * time.Second // for a guest whose output ended to exit
)

// Config is one demo.
type Config struct {
	Bin        string        // this binary: started as the host and the guest
	Duration   time.Duration // of the guest's load
	Servicings int           // of the host, spaced evenly over the load
	// Capture, if set, is a file the host captures the bus to (vmbus host
	// --capture), with CaptureSnapLen bytes of each packet and at most
	// CaptureMaxBytes bytes in all (0: the host's defaults).
	Capture                         string
	CaptureSnapLen, CaptureMaxBytes int64
}

// Result is `vmbus demo --json`, and the figures of the summary table.
type Result struct {
	Verified bool     `json:"verified"`
	Failures []string `json:"failures,omitempty"` // why not verified
	Seconds  float64  `json:"seconds"`            // the whole demo, wall time

	Payload       int     `json:"payload"`
	Packets       uint64  `json:"packets"`
	StreamBytes   uint64  `json:"stream_bytes"`
	StreamSeconds float64 `json:"stream_seconds"`
	PacketsPerSec float64 `json:"packets_per_sec"`
	BytesPerSec   float64 `json:"bytes_per_sec"`

	PingSent     uint64  `json:"ping_sent"`
	PingReceived uint64  `json:"ping_received"`
	PingP50us    float64 `json:"ping_p50_us"`
	PingP99us    float64 `json:"ping_p99_us"`

	DiskBytesVerified int64   `json:"disk_bytes_verified"`
	DiskSeconds       float64 `json:"disk_seconds"`
	DiskBytesPerSec   float64 `json:"disk_bytes_per_sec"`

	Servicings    int       `json:"servicings"`
	BlackoutMs    []float64 `json:"blackout_ms"`
	BlackoutP50ms float64   `json:"blackout_p50_ms"`
	BlackoutMaxms float64   `json:"blackout_max_ms"`

	Lost       uint64 `json:"lost"`
	Duplicated uint64 `json:"duplicated"`
	Corrupted  uint64 `json:"corrupted"`
	Stray      uint64 `json:"stray"`
	Mismatched int64  `json:"mismatched"`
}

// Progress is told what happens while the demo runs. Update and Finish
// are called from Run's goroutine, Serviced from another; Finish comes
// once the guest's output ended, before Run returns.
type Progress interface {
	Update(guestload.Line)              // a progress line of the guest
	Serviced(n int, blackoutMs float64) // the n-th servicing completed
	Finish()
}

// Run runs the host and the guest and gathers the figures. The error is
// for a demo that could not run (no temporary directory, a child that
// would not start, an interrupt); what ran and went wrong is in
// Result.Failures. Every child is stopped and waited for, and the
// temporary directory removed, before it returns.
func Run(ctx context.Context, cfg Config, prog Progress) (res Result, err error) {
	start := time.Now()
	res.BlackoutMs = []float64{}
	failf := func(format string, args ...any) { res.Failures = append(res.Failures, fmt.Sprintf(format, args...)) }
	defer func() {
		res.Seconds = time.Since(start).Seconds()
		res.Verified = err == nil && len(res.Failures) == 0
	}()

	dir, err := os.MkdirTemp("", "vmbus-demo-")
	if err != nil {
		return res, fmt.Errorf("demo: %v", err)
	}
	defer os.RemoveAll(dir)
	socket, disk, state := filepath.Join(dir, "bus.sock"), filepath.Join(dir, "disk.img"), filepath.Join(dir, "state.bin")
	if err := os.WriteFile(disk, nil, 0o600); err != nil {
		return res, fmt.Errorf("demo: %v", err)
	}
	if err := os.Truncate(disk, diskSize); err != nil {
		return res, fmt.Errorf("demo: %v", err)
	}

	args := []string{"host", "--socket", socket, "--device", "echo", "--device", "blk=" + disk,
		"--state-file", state, "--log-format", "json"}
	if cfg.Capture != "" {
		args = append(args, "--capture", cfg.Capture)
		if cfg.CaptureSnapLen > 0 {
			args = append(args, "--capture-snaplen", strconv.FormatInt(cfg.CaptureSnapLen, 10))
		}
		if cfg.CaptureMaxBytes > 0 {
			args = append(args, "--capture-max-bytes", strconv.FormatInt(cfg.CaptureMaxBytes, 10))
		}
	}
	host, err := startHost(cfg.Bin, args)
	if err != nil {
		return res, fmt.Errorf("demo: %v", err)
	}
	defer func() {
		if code, why := host.proc.Stop(0); code != 0 {
			failf("host: %s", why)
		}
	}()
	if err := host.listening(ctx, startTimeout); err != nil {
		return res, fmt.Errorf("demo: host did not start: %v%s", err, host.proc.Tail())
	}

	guest, err := child.Start(cfg.Bin, []string{"guest", "--socket", socket, "demo-load", "--duration", cfg.Duration.String()}, nil)
	if err != nil {
		return res, fmt.Errorf("demo: %v", err)
	}
	defer func() {
		// A guest whose stdout ended is exiting: give it time to, unless
		// the demo was interrupted.
		grace := guestGrace
		if ctx.Err() != nil {
			grace = 0
		}
		if code, why := guest.Stop(grace); code != 0 {
			failf("guest: %s", why)
		}
	}()

	// The servicings, spaced evenly over the traffic once it flows.
	serviced := make(chan struct{})
	started := make(chan struct{})   // the guest's traffic flows
	guestDone := make(chan struct{}) // no servicing starts after this
	var blackouts []float64
	var svcErr error
	go func() {
		defer close(serviced)
		select {
		case <-started:
		case <-ctx.Done():
			return
		}
		select {
		case <-guestDone:
			return
		default:
		}
		t0 := time.Now()
		for i := 1; i <= cfg.Servicings; i++ {
			at := t0.Add(cfg.Duration * time.Duration(i) / time.Duration(cfg.Servicings+1))
			select {
			case <-time.After(time.Until(at)):
			case <-guestDone:
				return
			case <-ctx.Done():
				return
			}
			ms, err := host.service(ctx, i)
			if err != nil {
				svcErr = fmt.Errorf("servicing %d: %w", i, err)
				return
			}
			blackouts = append(blackouts, ms)
			prog.Serviced(i, ms)
		}
	}()

	var result *guestload.Line
	markStarted := func() {
		select {
		case <-started:
		default:
			close(started)
		}
	}
read:
	for {
		select {
		case l, ok := <-guest.Lines():
			if !ok {
				break read
			}
			var m guestload.Line
			if json.Unmarshal([]byte(l), &m) != nil {
				continue
			}
			switch m.Type {
			case guestload.TypeProgress:
				markStarted()
				prog.Update(m)
			case guestload.TypeResult:
				result = &m
			}
		case <-ctx.Done():
			break read
		}
	}
	prog.Finish()
	close(guestDone)
	markStarted()
	<-serviced
	if ctx.Err() != nil {
		return res, fmt.Errorf("demo: interrupted")
	}

	if svcErr != nil {
		failf("%v", svcErr)
	}
	res.Servicings = len(blackouts)
	if res.Servicings != cfg.Servicings {
		failf("%d of %d servicings done", res.Servicings, cfg.Servicings)
	}
	if len(blackouts) > 0 {
		res.BlackoutMs = blackouts
		s := slices.Sorted(slices.Values(blackouts))
		res.BlackoutP50ms, res.BlackoutMaxms = s[(len(s)-1)/2], s[len(s)-1]
	}
	if result == nil {
		failf("the guest printed no result%s", guest.Tail())
		return res, nil
	}
	check(&res, *result, failf)
	return res, nil
}

// check takes the guest's result line r into res and applies the demo's
// rule: every packet back intact, disk bytes verified, every ping
// answered, nothing lost, duplicated, corrupted, stray or mismatched.
func check(res *Result, r guestload.Line, failf func(string, ...any)) {
	res.Payload, res.Packets, res.StreamBytes, res.StreamSeconds = r.Payload, r.Packets, r.Bytes, r.StreamSeconds
	if r.StreamSeconds > 0 {
		res.PacketsPerSec, res.BytesPerSec = float64(r.Packets)/r.StreamSeconds, float64(r.Bytes)/r.StreamSeconds
	}
	res.PingSent, res.PingReceived, res.PingP50us, res.PingP99us = r.PingSent, r.PingReceived, r.PingP50us, r.PingP99us
	res.DiskBytesVerified, res.DiskSeconds = r.DiskBytes, r.DiskSeconds
	if r.DiskSeconds > 0 {
		res.DiskBytesPerSec = float64(r.DiskBytes) / r.DiskSeconds
	}
	res.Lost, res.Duplicated, res.Corrupted, res.Stray, res.Mismatched = r.Lost, r.Duplicated, r.Corrupted, r.Stray, r.Mismatches
	for _, e := range r.Errors {
		failf("guest: %s", e)
	}
	if r.Packets == 0 || r.Packets != r.Sent {
		failf("%d of %d stream packets came back intact", r.Packets, r.Sent)
	}
	if r.DiskBytes == 0 {
		failf("no disk bytes verified")
	}
	if r.PingSent == 0 || r.PingReceived != r.PingSent {
		failf("%d of %d pings answered", r.PingReceived, r.PingSent)
	}
	if n := r.Lost + r.Duplicated + r.Corrupted + r.Stray; n > 0 || r.Mismatches > 0 {
		failf("%d lost, %d duplicated, %d corrupted, %d stray packets, %d disk bytes mismatched",
			r.Lost, r.Duplicated, r.Corrupted, r.Stray, r.Mismatches)
	}
}
