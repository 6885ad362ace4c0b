package demo

import (
	"context"
	"strings"
	"testing"
	"time"
)

// fakeHost is a shell that logs, as a host does, that it listens, and on
// SIGHUP the given event line ($$ is its pid).
func fakeHost(onHUP string) string {
	return `trap 'echo "` + onHUP + `" >&2' HUP
echo '{"level":"INFO","msg":"host listening","socket":"s","devices":1}' >&2
while :; do sleep 0.01; done`
}

// TestServiceRolledBack: a servicing the host rolled back (restored its
// guests in the process that saved them) fails the demo, though its pid
// and count are the servicing's; a successor's completion does not.
func TestServiceRolledBack(t *testing.T) {
	for _, tc := range []struct {
		line, want string
	}{
		{`{\"level\":\"WARN\",\"msg\":\"servicing rolled back\",\"blackout_ms\":2,\"servicing\":1,\"exec\":false,\"pid\":$$}`, "servicing 1 rolled back"},
		{`{\"level\":\"INFO\",\"msg\":\"servicing complete\",\"blackout_ms\":2,\"servicing\":1,\"exec\":true,\"pid\":$$}`, ""},
	} {
		h, err := startHost("/bin/sh", []string{"-c", fakeHost(tc.line)})
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
