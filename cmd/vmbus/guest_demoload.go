package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/device/blk"
	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/internal/guestload"
)

// Bounds of demo-load's flags.
const (
	maxLoadChannels = 64
	// echoRingBytes is the guest memory one echo channel's rings take.
	echoRingBytes = 2 * echo.DefaultRingPages * 4096
)

// newGuestDemoLoadCmd is the hidden `vmbus guest --socket S demo-load`, the
// guest process of `vmbus demo` and of each guest of `vmbus soak`: one
// connection, a short ping, then echo streams (one per channel, up to
// --channels) and blk write/read-verify rounds side by side for --duration
// (package guestload).
func newGuestDemoLoadCmd(socket *string) *cobra.Command {
	var cfg guestload.Config
	var disk bool
	cmd := &cobra.Command{
		Use:    "demo-load [--duration D] [--interval D] [--channels N] [--rate N] [--disk=false] [--disk-offset N --disk-bytes N]",
		Short:  "The guest side of vmbus demo and vmbus soak: streams and disk verify at once, JSON progress lines",
		Hidden: true,
		Args:   exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Duration <= 0 || cfg.Interval <= 0 || cfg.Pings <= 0 || cfg.Chunk == 0 || cfg.Chunk > 1<<24 ||
				cfg.Payload < echo.HeaderSize || cfg.Payload > echo.DefaultMaxPayload || cfg.DiskChunk < 4096 || cfg.DiskChunk > 16<<20 || cfg.DiskChunk%512 != 0 {
				return usageErrorf("demo-load: want --duration, --interval, --pings > 0, 0 < --chunk <= 2^24, %d <= --payload <= %d, 4096 <= --disk-chunk <= 16 MiB in sectors",
					echo.HeaderSize, echo.DefaultMaxPayload)
			}
			if cfg.Channels < 1 || cfg.Channels > maxLoadChannels || cfg.Rate < 0 || cfg.DiskEvery < 0 || cfg.Idle <= 0 ||
				cfg.DiskOffset < 0 || cfg.DiskOffset%512 != 0 || cfg.DiskBytes < 0 {
				return usageErrorf("demo-load: want 1 <= --channels <= %d, --rate >= 0, --disk-every >= 0, --idle > 0, --disk-offset >= 0 in sectors, --disk-bytes >= 0", maxLoadChannels)
			}
			if *socket == "" {
				return usageErrorf("guest: --socket is required")
			}
			ctx := cmd.Context()
			// Each channel's rings come out of guest memory, beside blk's
			// bounce buffers.
			mem := uint64(guestMemory + (cfg.Channels-1)*echoRingBytes)
			cl, err := guest.Dial(ctx, *socket, guest.Config{MemorySize: mem, ChannelPoll: guestPoll})
			if err != nil {
				return failuref("guest: cannot reach host at %s: %v", *socket, err)
			}
			defer cl.Close()
			octx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			ecs, err := guestload.OpenEchoes(octx, cl, cfg.Channels)
			for _, ec := range ecs {
				defer ec.Close()
			}
			if err != nil {
				return failuref("demo-load: echo device: %v", err)
			}
			var d *blk.Disk
			if disk {
				if d, err = blk.Open(octx, cl, blk.ClientConfig{}); err != nil {
					return failuref("demo-load: blk device: %v", err)
				}
				defer d.Close()
				if cfg.DiskBytes == 0 {
					cfg.DiskBytes = d.Size() - cfg.DiskOffset
				}
				if cfg.DiskOffset > d.Size() || cfg.DiskBytes > d.Size()-cfg.DiskOffset || cfg.DiskBytes < int64(cfg.DiskChunk) {
					return usageErrorf("demo-load: the disk's %d bytes hold no --disk-chunk of %d at --disk-offset %d in --disk-bytes %d",
						d.Size(), cfg.DiskChunk, cfg.DiskOffset, cfg.DiskBytes)
				}
			}
			if err := guestload.Run(ctx, cmd.OutOrStdout(), ecs, d, cfg); err != nil {
				return failuref("%v", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&cfg.Duration, "duration", 10*time.Second, "stream and verify the disk this long")
	f.DurationVar(&cfg.Interval, "interval", 200*time.Millisecond, "one progress line this often")
	f.IntVar(&cfg.Payload, "payload", 256, "bytes per stream packet")
	f.IntVar(&cfg.Pings, "pings", 1000, "round trips of the ping (on the first channel) before the load")
	f.Uint64Var(&cfg.Chunk, "chunk", 50000, "packets per stream run (each run is checked whole)")
	f.IntVar(&cfg.Channels, "channels", 1, "stream on this many echo channels at once, or on all offered if fewer")
	f.IntVar(&cfg.Rate, "rate", 0, "packets per second per channel at most (0: as fast as they come back)")
	f.BoolVar(&disk, "disk", true, "verify the blk disk beside the streams")
	f.IntVar(&cfg.DiskChunk, "disk-chunk", 256<<10, "bytes per disk round")
	f.Int64Var(&cfg.DiskOffset, "disk-offset", 0, "verify the disk from this byte on (guests sharing a disk each take a region)")
	f.Int64Var(&cfg.DiskBytes, "disk-bytes", 0, "verify this many bytes of the disk (0: to its end)")
	f.DurationVar(&cfg.DiskEvery, "disk-every", 0, "pause this long between disk rounds")
	f.DurationVar(&cfg.Idle, "idle", guestload.DefaultIdle, "count a stream run's missing packets as lost once none came back for this long")
	return cmd
}
