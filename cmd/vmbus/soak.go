package main

import (
	"encoding/json"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/internal/soak"
)

// soakMaxGuests bounds --guests.
const soakMaxGuests = 32

func newSoakCmd() *cobra.Command {
	var (
		cfg    soak.Config
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
			if cfg.Guests < 1 || cfg.Guests > soakMaxGuests || cfg.Channels < 1 || cfg.Channels > maxEchoChannels ||
				cfg.Duration <= 0 || cfg.ServiceEvery < 0 || (cfg.ServiceEvery > 0 && cfg.ServiceEvery < 500*time.Millisecond) ||
				cfg.RSSEvery < 100*time.Millisecond || cfg.Warmup < 0 || cfg.Rate < 0 || cfg.DiskEvery < 0 || cfg.RSSGrowth <= 0 ||
				cfg.Payload < 16 || cfg.Payload > 64<<10 {
				return usageErrorf("soak: want 1 <= --guests <= %d, 1 <= --channels <= %d, --duration > 0, --service-every 0 or >= 500ms, --rss-every >= 100ms, "+
					"--warmup, --rate, --disk-every >= 0, --rss-growth > 0, 16 <= --payload <= 65536", soakMaxGuests, maxEchoChannels)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			out := cmd.OutOrStdout()
			prog := &soak.TextProgress{W: out, Cfg: cfg}
			if asJSON {
				prog.W = cmd.ErrOrStderr()
			}
			bin, err := os.Executable()
			if err != nil {
				return failuref("soak: own binary: %v", err)
			}
			cfg.Bin = bin
			res, err := soak.Run(ctx, cfg, prog)
			if err != nil {
				return failuref("%v", err)
			}
			if cfg.LogDir != "" {
				b, err := json.MarshalIndent(res, "", "  ")
				if err == nil {
					err = os.WriteFile(filepath.Join(cfg.LogDir, "soak.json"), append(b, '\n'), 0o644)
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
				res.WriteText(out)
			}
			if !res.Passed {
				return failuref("soak: failed: %s", strings.Join(res.Failures, "; "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Guests, "guests", 8, "guest processes")
	f.IntVar(&cfg.Channels, "channels", 8, "echo channels per guest, each streaming")
	f.DurationVar(&cfg.ServiceEvery, "service-every", 10*time.Second, "service the host this often (0: never)")
	f.DurationVar(&cfg.Duration, "duration", 30*time.Minute, "run the load this long")
	f.DurationVar(&cfg.RSSEvery, "rss-every", 30*time.Second, "sample the host's RSS, descriptors and goroutines this often")
	f.DurationVar(&cfg.Warmup, "warmup", 2*time.Minute, "samples before this are not judged for growth")
	f.Float64Var(&cfg.RSSGrowth, "rss-growth", 20, "percent the late RSS median may exceed the early one")
	f.IntVar(&cfg.Rate, "rate", 1000, "packets per second per channel (0: as fast as they come back)")
	f.IntVar(&cfg.Payload, "payload", 256, "bytes per stream packet")
	f.BoolVar(&cfg.Disk, "disk", true, "verify a disk region per guest beside the streams")
	f.DurationVar(&cfg.DiskEvery, "disk-every", time.Second, "each guest pauses this long between disk rounds")
	f.StringVar(&cfg.LogDir, "log-dir", "", "keep host.jsonl (the host's log), guest-N.jsonl (progress lines) and soak.json (the result) in this directory")
	f.BoolVar(&asJSON, "json", false, "print one JSON object (progress lines go to stderr)")
	return cmd
}
