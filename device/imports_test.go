// Package device_test holds the rules every device under device/ keeps.
package device_test

import (
	"go/build"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// beneath are the packages a device must not import itself: the channel
// API is the floor a VSP stands on, and what lies under it (ring framing,
// guest memory) is reached through it, so that those layers can change
// without touching a device.
var beneath = []string{
	"github.com/govmbus/govmbus/ring",
	"github.com/govmbus/govmbus/guestmem",
}

// TestDevicesStayAboveTheChannel: no device package (its non-test files)
// imports ring or guestmem directly.
func TestDevicesStayAboveTheChannel(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, e := range entries {
		if !e.IsDir() || e.Name() == "testdata" {
			continue
		}
		pkg, err := build.ImportDir(filepath.Join(".", e.Name()), 0)
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		checked++
		for _, imp := range pkg.Imports {
			if slices.Contains(beneath, imp) {
				t.Errorf("device/%s imports %s; use what package channel offers instead", e.Name(), imp)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no device package found")
	}
}
