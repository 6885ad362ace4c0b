package soak

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/govmbus/govmbus/internal/units"
)

// TextProgress is a Progress that prints a line when the soak's clock
// starts and one per sample.
type TextProgress struct {
	W   io.Writer
	Cfg Config
}

// Started prints what runs.
func (p *TextProgress) Started(hostPid int) {
	fmt.Fprintf(p.W, "soak: host pid %d, %d guests × %d echo channels%s, servicing every %v, for %v\n",
		hostPid, p.Cfg.Guests, p.Cfg.Channels, map[bool]string{true: " + blk", false: ""}[p.Cfg.Disk], p.Cfg.ServiceEvery, p.Cfg.Duration)
}

// Sampled prints the sample and the failed checks so far.
func (p *TextProgress) Sampled(s Sample, c Checks) {
	gr := "?"
	if s.Goroutines >= 0 {
		gr = strconv.Itoa(s.Goroutines)
	}
	fmt.Fprintf(p.W, "soak: %7.1f s  serviced %d  host RSS %.1f MiB  fds %d  threads %d  goroutines %s  packets %s  lost %d dup %d corrupt %d mismatched %d\n",
		s.Seconds, s.Servicings, s.RSSMiB, s.FDs, s.Threads, gr, units.Count(float64(s.Packets)), c.Lost, c.Duplicated, c.Corrupted, c.Mismatched)
}

// WriteText writes the summary tables.
func (r Result) WriteText(w io.Writer) {
	rss := "RSS within bound"
	if !r.RSS.Judged {
		// Too short a run for the growth rule: it passed without it.
		rss = "RSS not judged (above)"
	}
	verdict := "PASSED: nothing lost, duplicated, corrupted or mismatched; every servicing complete; no process died; " + rss
	if !r.Passed {
		verdict = "FAILED: " + strings.Join(r.Failures, "; ")
	}
	disk := ""
	if r.Disk {
		disk = " + blk"
	}
	rate := "unpaced"
	if r.Rate > 0 {
		rate = fmt.Sprintf("%d packets/s per channel", r.Rate)
	}
	fmt.Fprintf(w, "vmbus soak: %d guests × %d echo channels%s, %d-byte packets, %s, servicing every %gs, %.1f s\n",
		r.Guests, r.Channels, disk, r.Payload, rate, r.ServiceEveryS, r.Seconds)
	fmt.Fprintf(w, "servicings: %d done, %d failed; blackout p50 %.1f ms, p99 %.1f ms, max %.1f ms; host log: %d errors, %d warnings\n",
		r.Servicings, r.ServicingsFailed, r.BlackoutP50ms, r.BlackoutP99ms, r.BlackoutMaxms, r.HostErrorLines, r.HostWarnLines)
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "guest\texit\tchannels\tpackets\tbytes\tdisk verified\tlost\tdup\tcorrupt\tstray\tmismatched\t")
	for _, g := range r.PerGuest {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t\n", g.Guest, g.Exit, g.Channels, g.Packets,
			units.Bytes(float64(g.Bytes)), units.Bytes(float64(g.DiskBytes)), g.Lost, g.Duplicated, g.Corrupted, g.Stray, g.Mismatches)
	}
	fmt.Fprintf(tw, "total\t\t\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t\n", r.Packets, units.Bytes(float64(r.Bytes)), units.Bytes(float64(r.DiskBytes)),
		r.Lost, r.Duplicated, r.Corrupted, r.Stray, r.Mismatches)
	tw.Flush()
	fmt.Fprintf(w, "%s", b.String())
	b.Reset()
	fmt.Fprintf(w, "host process (pid %d, kept across every servicing):\n", r.HostPid)
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "time\tservicings\tRSS MiB\tfds\tthreads\tgoroutines\tguests' RSS MiB\tpackets\t")
	for _, s := range r.Samples {
		gr := "?"
		if s.Goroutines >= 0 {
			gr = strconv.Itoa(s.Goroutines)
		}
		at := (time.Duration(s.Seconds) * time.Second).String()
		if s.Final {
			at = "guests done " + at
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%d\t%d\t%s\t%.1f\t%d\t\n", at,
			s.Servicings, s.RSSMiB, s.FDs, s.Threads, gr, s.GuestsMiB, s.Packets)
	}
	tw.Flush()
	fmt.Fprintf(w, "%s", b.String())
	if r.RSS.Judged {
		fmt.Fprintf(w, "RSS: median %.1f MiB in the first quarter of the %d samples after the %gs warm-up, %.1f MiB in the last: %+.1f%% (bound %+.0f%%)\n",
			r.RSS.FirstMedianMiB, r.RSS.Samples, r.RSS.WarmupS, r.RSS.LastMedianMiB, r.RSS.GrowthPct, r.RSS.BoundPct)
	} else {
		fmt.Fprintf(w, "RSS: not judged: %d samples after the %gs warm-up, the rule needs %d\n", r.RSS.Samples, r.RSS.WarmupS, MinSamples)
	}
	fmt.Fprintln(w, verdict)
}
