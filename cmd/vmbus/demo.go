package main

import (
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/capture"
	"github.com/govmbus/govmbus/internal/demo"
)

// Demo bounds, and how often plain progress prints.
const (
	demoMaxDuration  = 10 * time.Minute // --duration at most
	demoMaxServicing = 50               // --servicings at most
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
			if dc.CaptureSnapLen < 0 || dc.CaptureSnapLen > capture.MaxSnapLen {
				return usageErrorf("demo: --capture-snaplen %d: want 0 to %d", dc.CaptureSnapLen, capture.MaxSnapLen)
			}
			if dc.CaptureMaxBytes < 0 {
				return usageErrorf("demo: --capture-max-bytes %d: want 0 (no limit) or more", dc.CaptureMaxBytes)
			}
			if fi, err := os.Stat(dc.Capture); dc.Capture != "" && err == nil && fi.IsDir() {
				return usageErrorf("demo: --capture %s is a directory, not a file", dc.Capture)
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
				demo.NewTextProgress(progOut, plain, duration, servicings))
			if err != nil {
				return failuref("%v", err)
			}
			if asJSON {
				if err := printJSON(out, res); err != nil {
					return err
				}
			} else {
				res.WriteText(out)
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
