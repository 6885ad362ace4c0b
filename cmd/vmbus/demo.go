package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/govmbus/govmbus/internal/demo"
	"github.com/govmbus/govmbus/internal/guestload"
)

// Demo bounds, and how often plain progress prints.
const (
	demoMaxDuration  = 10 * time.Minute // --duration at most
	demoMaxServicing = 50               // --servicings at most
	demoPlainEvery   = time.Second      // one plain progress line this often
)

func newDemoCmd() *cobra.Command {
	var (
		duration   time.Duration
		servicings int
		asJSON     bool
		dc         demo.Config
	)
	cmd := &cobra.Command{
		Use:   "demo [--duration D] [--servicings N] [--json] [--capture FILE [--capture-snaplen N] [--capture-max-bytes N]]",
		Short: "Run a host and a guest, stream and verify the disk, service the host mid-stream, print a summary",
		Long: `Starts a host (echo and a blk disk in a temporary file) and a guest as
separate processes of this binary. The guest pings, then streams numbered,
checksummed packets through echo and writes, reads back and compares disk
rounds, for --duration; meanwhile the host is serviced (SIGHUP: saved and
re-executed in place) --servicings times. Every packet and disk byte is
checked. Progress shows as a bar on a terminal and as plain lines otherwise;
then a summary table, or with --json one JSON object with "verified".
--capture has the host capture the bus (as vmbus host --capture; read it
with vmbus capture read, or Wireshark: docs/CAPTURE.md). Exit status 0 if everything was verified, 1 if anything was lost or wrong.`,
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
			bin, err := os.Executable()
			if err != nil {
				return failuref("demo: own binary: %v", err)
			}
			dc.Bin, dc.Duration, dc.Servicings = bin, duration, servicings
			res, err := demo.Run(ctx, dc,
				newDemoProgress(progOut, plain, duration, servicings))
			if err != nil {
				return failuref("%v", err)
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
	f.StringVar(&dc.Capture, "capture", "", "the host captures the bus to this pcapng file")
	f.Int64Var(&dc.CaptureSnapLen, "capture-snaplen", 128, "bytes of each ring packet kept in the capture")
	f.Int64Var(&dc.CaptureMaxBytes, "capture-max-bytes", 64<<20, "the capture stops at this size")
	return cmd
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

// Update shows a progress line of the guest.
func (p *demoProgress) Update(m guestload.Line) {
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

// Serviced shows a servicing done.
func (p *demoProgress) Serviced(n int, ms float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = n
	if p.bar == nil && p.plain {
		fmt.Fprintf(p.w, "demo: servicing %d complete, blackout %.1f ms\n", n, ms)
	}
}

// Finish ends the bar.
func (p *demoProgress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Finish()
	}
}

// printDemoSummary prints the summary table.
func printDemoSummary(w io.Writer, r demo.Result) {
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
