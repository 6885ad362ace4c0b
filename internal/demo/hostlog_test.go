package demo

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/hoststub"
)

func TestMain(m *testing.M) {
	if hoststub.Serve() {
		return
	}
	os.Exit(m.Run())
}

// TestServiceRolledBack: a servicing the host rolled back (restored its
// guests in the process that saved them) fails the demo, though its pid
// and count are the servicing's; a successor's completion does not.
func TestServiceRolledBack(t *testing.T) {
	for _, tc := range []struct {
		line, want string
	}{
		{hoststub.RolledBack, "servicing 1 rolled back"},
		{hoststub.Complete, ""},
	} {
		t.Setenv(hoststub.Var, tc.line)
		h, err := startHost(os.Args[0], []string{"-test.run=^$"})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := h.listening(ctx, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		ms, err := h.service(ctx, 1)
		h.proc.Stop(time.Second)
		switch {
		case tc.want == "" && (err != nil || ms != 2):
			t.Errorf("%s: %v ms, %v", tc.line, ms, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v ms, %v; want %q", tc.line, ms, err, tc.want)
		}
	}
}
