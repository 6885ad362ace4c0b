package soak

import (
	"testing"
	"time"
)

// TestJudgeRSS: the memory rule on made-up curves.
func TestJudgeRSS(t *testing.T) {
	curve := func(rss ...float64) []Sample {
		s := make([]Sample, len(rss))
		for i, v := range rss {
			s[i] = Sample{Seconds: float64(i * 30), RSSMiB: v}
		}
		return s
	}
	final := func(s []Sample) []Sample {
		s[len(s)-1].Final = true
		return s
	}
	for _, tc := range []struct {
		name          string
		samples       []Sample
		judged, grew  bool
		first, last   float64
		growthPctNear float64
	}{
		// The warm-up (before 60 s) is left out, so the early 5 MiB
		// does not count.
		{"flat", curve(5, 5, 20, 21, 20, 22, 20, 21, 20, 21, 20, 21), true, false, 20.5, 20.5, 0},
		{"noisy", curve(5, 5, 20, 30, 20, 22, 24, 21, 20, 21, 20, 21), true, false, 25, 20.5, -18},
		{"leak", curve(5, 5, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29), true, true, 20.5, 28.5, 39},
		{"at the bound", curve(0, 0, 10, 10, 11, 11, 11, 11, 12, 12), true, false, 10, 12, 20},
		{"short", curve(5, 5, 20, 40, 60), false, false, 0, 0, 0},
		// The sample after the guests left is not judged: without it
		// the last quarter is {28, 29}, with it {29, 3}.
		{"final", final(curve(5, 5, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 3)), true, true, 20.5, 28.5, 39},
	} {
		v := JudgeRSS(tc.samples, time.Minute, 20)
		if v.Judged != tc.judged || v.Grew != tc.grew || v.FirstMedianMiB != tc.first || v.LastMedianMiB != tc.last ||
			v.GrowthPct < tc.growthPctNear-1 || v.GrowthPct > tc.growthPctNear+1 {
			t.Errorf("%s: %+v", tc.name, v)
		}
	}
}
