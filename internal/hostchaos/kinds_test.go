package hostchaos

import (
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestArmReproducible: a session's choices depend on the seed and its
// number only, and across seeds every kind of misbehaviour is armed.
func TestArmReproducible(t *testing.T) {
	seen := make(map[string]bool)
	for seed := range uint64(200) {
		for n := range uint64(4) {
			a, b := arm(sessionRng(seed, n), nil), arm(sessionRng(seed, n), nil)
			if !maps.Equal(a, b) {
				t.Fatalf("seed %d session %d armed %v, then %v", seed, n, slices.Sorted(maps.Keys(a)), slices.Sorted(maps.Keys(b)))
			}
			for k := range a {
				seen[k] = true
			}
		}
	}
	for _, k := range Kinds() {
		if !seen[k] {
			t.Errorf("%s is never armed", k)
		}
	}
	only := []string{kRingReplay, kOfferDuplicate}
	for seed := range uint64(50) {
		for k := range arm(sessionRng(seed, 0), only) {
			if !slices.Contains(only, k) {
				t.Fatalf("seed %d armed %s, not among %v", seed, k, only)
			}
		}
	}
}

// TestKindsDocumented: docs/HOSTILE_HOST.md names every kind.
func TestKindsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/HOSTILE_HOST.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Kinds() {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("docs/HOSTILE_HOST.md does not name %s", k)
		}
	}
}
