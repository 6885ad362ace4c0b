package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/hosting/admin"
)

// newAdminCaptureCmd is `vmbus admin capture start FILE | stop`.
func newAdminCaptureCmd(o *adminOpts) *cobra.Command {
	var req admin.CaptureRequest
	start := &cobra.Command{Use: "start FILE [--snaplen N] [--max-bytes N]", Short: "Start capturing the bus to FILE (docs/CAPTURE.md)",
		Args: exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Path = args[0]
			return o.do(cmd, "POST", "/v1/capture", &req, nil)
		}}
	start.Flags().IntVar(&req.SnapLen, "snaplen", 0, "bytes kept of each message or packet (0: 65536)")
	start.Flags().Int64Var(&req.MaxBytes, "max-bytes", 0, "stop capturing before the file passes this size (0: no limit)")
	stop := &cobra.Command{Use: "stop", Short: "Stop the capture and print what it recorded", Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var r admin.CaptureResult
			if err := o.do(cmd, "DELETE", "/v1/capture", nil, &r); err != nil {
				return err
			}
			return o.print(cmd.OutOrStdout(), r, func(w io.Writer) { fmt.Fprintf(w, "records %d dropped %d bytes %d\n", r.Records, r.Dropped, r.Bytes) })
		}}
	return groupCmd("capture start|stop", "Start or stop a capture of the bus", "Start or stop a capture of the bus; servicings carry it on.", start, stop)
}
