package soak

import (
	"slices"
	"time"
)

// MinSamples is how many samples after the warm-up the memory rule needs
// to judge.
const MinSamples = 8

// Sample is one look at the host process (the same pid across every
// servicing: the exec keeps it) and the guests.
type Sample struct {
	Seconds    float64 `json:"seconds"`
	RSSMiB     float64 `json:"rss_mib"`    // the host's VmRSS
	FDs        int     `json:"fds"`        // the host's open descriptors
	Threads    int     `json:"threads"`    // the host's threads
	Goroutines int     `json:"goroutines"` // the host's, from its /metrics; -1 if the scrape failed
	GuestsMiB  float64 `json:"guests_rss_mib"`
	Servicings int     `json:"servicings"` // completed so far
	Packets    uint64  `json:"packets"`    // every guest's, from their last progress lines
	// Final marks the sample taken once the guests are done: it shows
	// the host without its load and is not judged for growth.
	Final bool `json:"final,omitempty"`
}

// RSSVerdict is the memory rule: the median RSS of the last quarter of
// the samples after the warm-up (and before the guests are done) may
// exceed that of the first quarter by at most the bound.
type RSSVerdict struct {
	Judged         bool    `json:"judged"`
	WarmupS        float64 `json:"warmup_s"`
	Samples        int     `json:"samples"` // after the warm-up
	FirstMedianMiB float64 `json:"first_quarter_median_mib"`
	LastMedianMiB  float64 `json:"last_quarter_median_mib"`
	GrowthPct      float64 `json:"growth_pct"`
	BoundPct       float64 `json:"bound_pct"`
	Grew           bool    `json:"grew"` // beyond the bound
}

// JudgeRSS applies the memory rule to samples.
func JudgeRSS(samples []Sample, warmup time.Duration, boundPct float64) RSSVerdict {
	v := RSSVerdict{WarmupS: warmup.Seconds(), BoundPct: boundPct}
	var rss []float64
	for _, s := range samples {
		if s.Seconds >= warmup.Seconds() && !s.Final {
			rss = append(rss, s.RSSMiB)
		}
	}
	v.Samples = len(rss)
	if len(rss) < MinSamples {
		return v
	}
	q := len(rss) / 4
	v.Judged = true
	v.FirstMedianMiB, v.LastMedianMiB = median(rss[:q]), median(rss[len(rss)-q:])
	v.GrowthPct = (v.LastMedianMiB/v.FirstMedianMiB - 1) * 100
	v.Grew = v.GrowthPct > boundPct
	return v
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile is the nearest-rank p-th percentile of xs, 0 if empty.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}
