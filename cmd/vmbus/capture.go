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
		Short: "Print a capture made by vmbus host --capture, one record a line (docs/CAPTURE.md)",
		Long: `Print the records of a capture (pcapng, docs/CAPTURE.md): time, section
(each servicing's successor starts one), guest, channel, direction (in:
guest→host, out: host→guest), kind, message or packet type, transaction id
and length. --json prints one object a record, with its bytes in hex.
--filter keeps the records every KEY=VALUE term matches (terms separated by
commas or spaces): guest=N, channel=N, kind=control|packet|signal|event,
dir=in|out, type=NAME (OpenChannel, InBand, Completion, ...), txid=N.
A file cut short or corrupt prints what precedes the damage, then exits 1.`,
		Args: exactArgs(1, "the capture file"),
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
			if _, err := capture.Print(cmd.OutOrStdout(), in, f, asJSON); err != nil {
				return failuref("capture read: %v", err)
			}
			return nil
		},
	}
	read.Flags().BoolVar(&asJSON, "json", false, "one JSON object per record")
	read.Flags().StringVar(&filter, "filter", "", "keep the records that match every KEY=VALUE term")
	return groupCmd("capture", "Read captures of VMBus traffic", "Read captures of VMBus traffic (vmbus host --capture FILE).", read)
}
