package soak

import (
	"strings"
	"testing"
)

// TestVerdictSaysRSSJudged: a passing run whose memory was not judged
// (too few samples after the warm-up) does not claim its RSS within
// bound; before, the verdict did, a line below "RSS: not judged".
func TestVerdictSaysRSSJudged(t *testing.T) {
	for _, judged := range []bool{false, true} {
		var b strings.Builder
		Result{Passed: true, RSS: RSSVerdict{Judged: judged}}.WriteText(&b)
		lines := strings.Split(strings.TrimSpace(b.String()), "\n")
		verdict := lines[len(lines)-1]
		if !strings.HasPrefix(verdict, "PASSED") || strings.Contains(verdict, "RSS within bound") != judged || strings.Contains(verdict, "RSS not judged") == judged {
			t.Errorf("judged %v: verdict %q", judged, verdict)
		}
	}
}
