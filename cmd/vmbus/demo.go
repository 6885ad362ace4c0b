package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/internal/guestload"
	"golang.org/x/term"
)

// Demo defaults and bounds.
const (
	demoDiskSize     = 8 << 20          // bytes of the blk disk's temporary file
	demoMaxDuration  = 10 * time.Minute // --duration at most
	demoMaxServicing = 50               // --servicings at most
	demoStartTimeout = 10 * time.Second // for the host to listen, the guest to load
	demoStopTimeout  = 10 * time.Second // for a child to exit after SIGTERM
	demoServiceWait  = 15 * time.Second // for one servicing to complete
	demoPlainEvery   = time.Second      // one plain progress line this often
)

// demoJSON is `vmbus demo --json`, and the figures of the summary table.
type demoJSON struct {
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

func newDemoCmd() *cobra.Command {
	var (
		duration   time.Duration
		servicings int
		asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "demo [--duration D] [--servicings N] [--json]",
		Short: "Run a host and a guest, stream and verify the disk, service the host mid-stream, print a summary",
		Long: `Starts a host (echo and a blk disk in a temporary file) and a guest as
separate processes of this binary. The guest pings, then streams numbered,
checksummed packets through echo and writes, reads back and compares disk
rounds, for --duration; meanwhile the host is serviced (SIGHUP: saved and
re-executed in place) --servicings times. Every packet and disk byte is
checked. Progress shows as a bar on a terminal and as plain lines otherwise;
then a summary table, or with --json one JSON object with "verified".
Exit status 0 if everything was verified, 1 if anything was lost or wrong.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if duration <= 0 || duration > demoMaxDuration || servicings < 0 || servicings > demoMaxServicing {
				return usageErrorf("demo: want 0 < --duration <= %v and 0 <= --servicings <= %d", demoMaxDuration, demoMaxServicing)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			out := cmd.OutOrStdout()
			// The progress goes with the text on stdout; beside --json on
			// stdout it goes to stderr, and only as a bar.
			progOut, plain := out, true
			if asJSON {
				progOut, plain = cmd.ErrOrStderr(), false
			}
			res, err := runDemo(ctx, demoConfig{duration: duration, servicings: servicings},
				newDemoProgress(progOut, plain, duration, servicings))
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(out, res); err != nil {
					return err
				}
			} else {
				printDemoSummary(out, res)
			}
			if !res.Verified {
				return failuref("demo: not verified: %s", strings.Join(res.Failures, "; "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&duration, "duration", 10*time.Second, "stream and verify the disk this long")
	f.IntVar(&servicings, "servicings", 2, "service the host this many times during the traffic")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

type demoConfig struct {
	duration   time.Duration
	servicings int
}

// runDemo runs the host and the guest and gathers the figures. The error
// is for a demo that could not run (no temporary directory, no binary, a
// child that would not start); what ran and went wrong is in Failures.
// Every child is stopped and waited for, and the temporary directory
// removed, before it returns.
func runDemo(ctx context.Context, cfg demoConfig, prog *demoProgress) (res demoJSON, err error) {
	start := time.Now()
	res.BlackoutMs = []float64{}
	failf := func(format string, args ...any) { res.Failures = append(res.Failures, fmt.Sprintf(format, args...)) }
	defer func() {
		res.Seconds = time.Since(start).Seconds()
		res.Verified = err == nil && len(res.Failures) == 0
	}()

	bin, err := os.Executable()
	if err != nil {
		return res, failuref("demo: own binary: %v", err)
	}
	dir, err := os.MkdirTemp("", "vmbus-demo-")
	if err != nil {
		return res, failuref("demo: %v", err)
	}
	defer os.RemoveAll(dir)
	socket, disk, state := filepath.Join(dir, "bus.sock"), filepath.Join(dir, "disk.img"), filepath.Join(dir, "state.bin")
	if err := os.WriteFile(disk, nil, 0o600); err != nil {
		return res, failuref("demo: %v", err)
	}
	if err := os.Truncate(disk, demoDiskSize); err != nil {
		return res, failuref("demo: %v", err)
	}

	host, err := startDemoChild(bin, "host", "--socket", socket, "--device", "echo", "--device", "blk="+disk,
		"--state-file", state, "--log-format", "json")
	if err != nil {
		return res, err
	}
	defer func() {
		if code, why := host.stop(0); code != 0 {
			failf("host: %s", why)
		}
	}()
	if _, err := host.waitLog(ctx, "host listening", demoStartTimeout); err != nil {
		return res, failuref("demo: host did not start: %v%s", err, host.tail())
	}

	guest, err := startDemoChild(bin, "guest", "--socket", socket, "demo-load", "--duration", cfg.duration.String())
	if err != nil {
		return res, err
	}
	defer func() {
		// A guest whose stdout ended is exiting: give it time to, unless
		// the demo was interrupted.
		grace := demoStopTimeout
		if ctx.Err() != nil {
			grace = 0
		}
		if code, why := guest.stop(grace); code != 0 {
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
		for i := 1; i <= cfg.servicings; i++ {
			at := t0.Add(cfg.duration * time.Duration(i) / time.Duration(cfg.servicings+1))
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
			prog.serviced(i, ms)
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
		case l, ok := <-guest.lines:
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
				prog.update(m)
			case guestload.TypeResult:
				result = &m
			}
		case <-ctx.Done():
			break read
		}
	}
	prog.finish()
	close(guestDone)
	markStarted()
	<-serviced
	if ctx.Err() != nil {
		return res, failuref("demo: interrupted")
	}

	if svcErr != nil {
		failf("%v", svcErr)
	}
	res.Servicings = len(blackouts)
	if res.Servicings != cfg.servicings {
		failf("%d of %d servicings done", res.Servicings, cfg.servicings)
	}
	if len(blackouts) > 0 {
		res.BlackoutMs = blackouts
		s := slices.Sorted(slices.Values(blackouts))
		res.BlackoutP50ms, res.BlackoutMaxms = s[(len(s)-1)/2], s[len(s)-1]
	}
	if result == nil {
		failf("the guest printed no result%s", guest.tail())
		return res, nil
	}
	r := *result
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
	return res, nil
}

// demoChild is a child process of the demo: this binary with other args,
// in its own process group (so a terminal's Ctrl-C reaches the demo, which
// stops its children in order), killed by the kernel should the demo die
// first. A goroutine reads its stdout lines into lines (closed at EOF) and
// keeps the last lines of its stderr; host log lines (JSON on stderr) go to
// logs.
type demoChild struct {
	cmd   *exec.Cmd
	lines chan string   // stdout, closed at EOF
	logs  chan logEntry // stderr JSON lines, never closed
	done  chan struct{} // closed once the process has been waited for
	err   error         // Wait's, valid after done

	mu   sync.Mutex
	last []string // the last stderr lines
}

// logEntry is one JSON log line of the host.
type logEntry map[string]any

// demoTailLines is how many stderr lines of a child an error quotes.
const demoTailLines = 8

func startDemoChild(bin string, args ...string) (*demoChild, error) {
	c := &demoChild{cmd: exec.Command(bin, args...), lines: make(chan string, 64),
		logs: make(chan logEntry, 256), done: make(chan struct{})}
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	c.cmd.WaitDelay = time.Second
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, failuref("demo: %v", err)
	}
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		return nil, failuref("demo: %v", err)
	}
	if err := c.cmd.Start(); err != nil {
		return nil, failuref("demo: start %s: %v", args[0], err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.mu.Lock()
			c.last = append(c.last, sc.Text())
			if len(c.last) > demoTailLines {
				c.last = c.last[1:]
			}
			c.mu.Unlock()
			var l logEntry
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				// Only servicing lines are awaited more than once; a full
				// queue drops the chatter, never those.
				if msg, _ := l["msg"].(string); strings.HasPrefix(msg, "servicing") {
					c.logs <- l
				} else {
					select {
					case c.logs <- l:
					default:
					}
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		wg.Wait()
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// tail is the child's last stderr lines, for an error message.
func (c *demoChild) tail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.last) == 0 {
		return ""
	}
	return "\n  " + strings.Join(c.last, "\n  ")
}

// waitLog waits for the next log line whose message is msg.
func (c *demoChild) waitLog(ctx context.Context, msg string, timeout time.Duration) (logEntry, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l := <-c.logs:
			if l["msg"] == msg {
				return l, nil
			}
		case <-c.done:
			return nil, fmt.Errorf("exited (%v) before %q", c.err, msg)
		case <-t.C:
			return nil, fmt.Errorf("no %q within %v", msg, timeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// service sends the host SIGHUP and waits for its n-th "servicing
// complete", returning the blackout in milliseconds.
func (c *demoChild) service(ctx context.Context, n int) (float64, error) {
	if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return 0, err
	}
	l, err := c.waitLog(ctx, "servicing complete", demoServiceWait)
	if err != nil {
		return 0, fmt.Errorf("%w%s", err, c.tail())
	}
	if l["servicing"] != float64(n) {
		return 0, fmt.Errorf("the host counts servicing %v", l["servicing"])
	}
	if l["pid"] != float64(c.cmd.Process.Pid) {
		return 0, fmt.Errorf("the successor's pid %v is not the host's %d", l["pid"], c.cmd.Process.Pid)
	}
	ms, ok := l["blackout_ms"].(float64)
	if !ok {
		return 0, errors.New("no blackout_ms in the servicing complete line")
	}
	return ms, nil
}

// stop waits up to grace for the child to exit by itself, then asks its
// process group to stop (SIGTERM), kills it after demoStopTimeout, and
// waits for the child. It reports the exit code (-1
// if killed by a signal) and, when not 0, why, with its last stderr lines.
func (c *demoChild) stop(grace time.Duration) (int, string) {
	// Drain what the stdout reader may still hold, so it never blocks.
	go func() {
		for range c.lines {
		}
	}()
	if grace > 0 {
		t := time.NewTimer(grace)
		select {
		case <-c.done:
		case <-t.C:
		}
		t.Stop()
	}
	select {
	case <-c.done:
	default:
		pid := c.cmd.Process.Pid
		syscall.Kill(-pid, syscall.SIGTERM)
		t := time.NewTimer(demoStopTimeout)
		select {
		case <-c.done:
		case <-t.C:
			syscall.Kill(-pid, syscall.SIGKILL)
			<-c.done
		}
		t.Stop()
	}
	code := c.cmd.ProcessState.ExitCode()
	if code == 0 {
		return 0, ""
	}
	return code, fmt.Sprintf("exit: %v%s", c.err, c.tail())
}

// demoProgress shows the guest's progress lines: a bar on a terminal; else,
// when plain, a line every demoPlainEvery; else nothing.
type demoProgress struct {
	w          io.Writer
	bar        *progressbar.ProgressBar
	plain      bool
	duration   time.Duration
	servicings int

	mu        sync.Mutex
	done      int // servicings completed
	lastPlain time.Time
	last      guestload.Line
}

func newDemoProgress(w io.Writer, plain bool, duration time.Duration, servicings int) *demoProgress {
	p := &demoProgress{w: w, plain: plain, duration: duration, servicings: servicings}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(duration.Milliseconds(),
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetDescription("starting"))
	}
	return p
}

func (p *demoProgress) update(m guestload.Line) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = m
	desc := fmt.Sprintf("%s packets, %s disk verified, serviced %d/%d, %d lost/dup/corrupt",
		siCount(float64(m.Packets)), siBytes(float64(m.DiskBytes)), p.done, p.servicings,
		m.Lost+m.Duplicated+m.Corrupted+uint64(m.Mismatches))
	switch {
	case p.bar != nil:
		p.bar.Describe(desc)
		p.bar.Set64(min(int64(m.Seconds*1000), p.duration.Milliseconds()))
	case p.plain:
		now := time.Now()
		if now.Sub(p.lastPlain) >= demoPlainEvery {
			p.lastPlain = now
			fmt.Fprintf(p.w, "demo: %4.1f/%g s  %s\n", m.Seconds, p.duration.Seconds(), desc)
		}
	}
}

func (p *demoProgress) serviced(n int, ms float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = n
	if p.bar == nil && p.plain {
		fmt.Fprintf(p.w, "demo: servicing %d complete, blackout %.1f ms\n", n, ms)
	}
}

func (p *demoProgress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Finish()
	}
}

// printDemoSummary prints the summary table.
func printDemoSummary(w io.Writer, r demoJSON) {
	verdict := "VERIFIED: nothing lost, duplicated, corrupted or mismatched"
	if !r.Verified {
		verdict = "NOT VERIFIED: " + strings.Join(r.Failures, "; ")
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "stream\t%d packets of %d B\t%s packets/s\t%s/s\n", r.Packets, r.Payload, siCount(r.PacketsPerSec), siBytes(r.BytesPerSec))
	fmt.Fprintf(tw, "ping\t%d of %d round trips\tp50 %.1f µs\tp99 %.1f µs\n", r.PingReceived, r.PingSent, r.PingP50us, r.PingP99us)
	fmt.Fprintf(tw, "disk\t%s written, read back, compared\t%s/s\n", siBytes(float64(r.DiskBytesVerified)), siBytes(r.DiskBytesPerSec))
	fmt.Fprintf(tw, "servicing\t%d of the host (SIGHUP)\tblackout p50 %.1f ms\tmax %.1f ms\n", r.Servicings, r.BlackoutP50ms, r.BlackoutMaxms)
	fmt.Fprintf(tw, "checks\t%d lost, %d duplicated, %d corrupted\t%d stray\t%d disk bytes mismatched\n", r.Lost, r.Duplicated, r.Corrupted, r.Stray, r.Mismatched)
	tw.Flush()
	fmt.Fprintf(w, "vmbus demo: %.1f s\n%s%s\n", r.Seconds, b.String(), verdict)
}

// siCount is n with a k, M or G suffix.
func siCount(n float64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f G", n/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2f M", n/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f k", n/1e3)
	}
	return fmt.Sprintf("%.0f", n)
}

// siBytes is n bytes in B, kB, MB or GB.
func siBytes(n float64) string {
	if n < 1e3 {
		return fmt.Sprintf("%.0f B", n)
	}
	return siCount(n) + "B"
}
