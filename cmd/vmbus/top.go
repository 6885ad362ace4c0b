package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/internal/top"
)

// newTopCmd is `vmbus top --admin PATH`: the live channel table
// (internal/top, docs/TOP.md).
func newTopCmd() *cobra.Command {
	var o top.Options
	var sortKey string
	cmd := &cobra.Command{
		Use:   "top --admin PATH [--interval D] [--count N] [--sort g|d|i|o|p|s]",
		Short: "Show a host's channels live: rates, rings, completions, signals, stalls",
		Long:  "Read the admin API of vmbus host --admin PATH every --interval: one line per\nchannel (docs/TOP.md), redrawn on a terminal (keys: " + top.Keys + "),\none plain table per interval otherwise.",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Admin == "" {
				return usageErrorf("top: --admin is required")
			}
			if err := notSocket("top: --admin", o.Admin); err != nil {
				return err
			}
			if len(sortKey) != 1 || !top.Key(sortKey[0]).Valid() {
				return usageErrorf("top: --sort %q: want one of g d i o p s", sortKey)
			}
			if o.Interval <= 0 || o.Count < 0 {
				return usageErrorf("top: --interval %v and --count %d: want an interval > 0 and a count >= 0", o.Interval, o.Count)
			}
			o.Sort = top.Key(sortKey[0])
			if err := top.Run(cmd.Context(), o, os.Stdin, cmd.OutOrStdout()); err != nil {
				return failuref("%v", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Admin, "admin", "", "the host's admin API socket (vmbus host --admin)")
	cmd.Flags().DurationVar(&o.Interval, "interval", time.Second, "time between tables")
	cmd.Flags().IntVar(&o.Count, "count", 0, "stop after this many tables (0: until q or a signal)")
	cmd.Flags().StringVar(&sortKey, "sort", "g", "first order: g guest, d device, i in, o out, p pending, s stall")
	return cmd
}
