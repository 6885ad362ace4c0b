package demo

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/govmbus/govmbus/internal/units"
)

// WriteText writes the summary table.
func (r Result) WriteText(w io.Writer) {
	verdict := "VERIFIED: nothing lost, duplicated, corrupted or mismatched"
	if !r.Verified {
		verdict = "NOT VERIFIED: " + strings.Join(r.Failures, "; ")
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "stream\t%d packets of %d B\t%s packets/s\t%s/s\n", r.Packets, r.Payload, units.Count(r.PacketsPerSec), units.Bytes(r.BytesPerSec))
	fmt.Fprintf(tw, "ping\t%d of %d round trips\tp50 %.1f µs\tp99 %.1f µs\n", r.PingReceived, r.PingSent, r.PingP50us, r.PingP99us)
	fmt.Fprintf(tw, "disk\t%s written, read back, compared\t%s/s\n", units.Bytes(float64(r.DiskBytesVerified)), units.Bytes(r.DiskBytesPerSec))
	fmt.Fprintf(tw, "servicing\t%d of the host (SIGHUP)\tblackout p50 %.1f ms\tmax %.1f ms\n", r.Servicings, r.BlackoutP50ms, r.BlackoutMaxms)
	fmt.Fprintf(tw, "checks\t%d lost, %d duplicated, %d corrupted\t%d stray\t%d disk bytes mismatched\n", r.Lost, r.Duplicated, r.Corrupted, r.Stray, r.Mismatched)
	tw.Flush()
	fmt.Fprintf(w, "vmbus demo: %.1f s\n%s%s\n", r.Seconds, b.String(), verdict)
}
