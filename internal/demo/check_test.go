package demo

import (
	"fmt"
	"strings"
	"testing"

	"github.com/govmbus/govmbus/internal/guestload"
)

// TestCheck: the demo's rule on made-up result lines of the guest.
func TestCheck(t *testing.T) {
	good := guestload.Line{Type: guestload.TypeResult, Payload: 256, Packets: 1000, Sent: 1000, Bytes: 256000, StreamSeconds: 2,
		DiskBytes: 1 << 20, DiskSeconds: 4, PingSent: 10, PingReceived: 10, PingP50us: 50, PingP99us: 90}
	for _, tc := range []struct {
		name string
		bad  func(*guestload.Line)
		want string // in the one failure; "" for none
	}{
		{"good", func(*guestload.Line) {}, ""},
		{"short", func(l *guestload.Line) { l.Packets = 999 }, "999 of 1000 stream packets came back intact"},
		{"no stream", func(l *guestload.Line) { l.Packets, l.Sent = 0, 0 }, "0 of 0 stream packets"},
		{"no disk", func(l *guestload.Line) { l.DiskBytes = 0 }, "no disk bytes verified"},
		{"ping", func(l *guestload.Line) { l.PingReceived = 9 }, "9 of 10 pings answered"},
		{"lost", func(l *guestload.Line) { l.Lost = 1 }, "1 lost, 0 duplicated"},
		{"stray", func(l *guestload.Line) { l.Stray = 2 }, "2 stray packets"},
		{"mismatched", func(l *guestload.Line) { l.Mismatches = 3 }, "3 disk bytes mismatched"},
		{"guest error", func(l *guestload.Line) { l.Errors = []string{"disk: flush: gone"} }, "guest: disk: flush: gone"},
	} {
		l := good
		tc.bad(&l)
		var res Result
		var failures []string
		check(&res, l, func(format string, args ...any) { failures = append(failures, fmt.Sprintf(format, args...)) })
		switch {
		case tc.want == "" && len(failures) > 0:
			t.Errorf("%s: failures %q", tc.name, failures)
		case tc.want != "" && (len(failures) != 1 || !strings.Contains(failures[0], tc.want)):
			t.Errorf("%s: failures %q, want one with %q", tc.name, failures, tc.want)
		}
	}
	var res Result
	check(&res, good, func(string, ...any) {})
	if res.Packets != 1000 || res.StreamBytes != 256000 || res.PacketsPerSec != 500 || res.BytesPerSec != 128000 ||
		res.DiskBytesVerified != 1<<20 || res.DiskBytesPerSec != 1<<18 || res.PingSent != 10 || res.PingP99us != 90 {
		t.Errorf("figures %+v", res)
	}
}
