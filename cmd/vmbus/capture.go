package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/capture"
)

// newCaptureCmd is `vmbus capture read FILE [--json] [--filter EXPR]`.
func newCaptureCmd() *cobra.Command {
	var asJSON bool
	var filter string
	read := &cobra.Command{
		Use:   "read FILE [--json] [--filter EXPR]",
		Short: "Print a capture made by vmbus host --capture, one record a line; a damaged file exits 1 (docs/CAPTURE.md)",
		Args:  exactArgs(1, "the capture file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := capture.ParseFilter(filter)
			if err != nil {
				return usageError(err)
			}
			in, err := os.Open(args[0])
			if err != nil {
				return usageErrorf("capture read: %v", err)
			}
			defer in.Close()
			if st, err := in.Stat(); err == nil && st.IsDir() {
				return usageErrorf("capture read: %s is a directory", args[0])
			}
			if _, err := capture.Print(cmd.OutOrStdout(), in, f, asJSON); err != nil {
				return failuref("capture read: %v", err)
			}
			return nil
		},
	}
	read.Flags().BoolVar(&asJSON, "json", false, "one JSON object per record, its bytes in hex")
	read.Flags().StringVar(&filter, "filter", "", "keep the records every KEY=VALUE term matches: guest, channel, kind (control|packet|signal|event), dir (in|out), type (OpenChannel, InBand, ...), txid; comma-separated")
	return groupCmd("capture", "Read captures of VMBus traffic", "Read captures of VMBus traffic (vmbus host --capture FILE).", read)
}
