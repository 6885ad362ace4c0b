package soak

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeHostVar makes the test binary a host as the tests below need one
// (fakeHost): the value is the line it logs on SIGHUP.
const fakeHostVar = "GOVMBUS_TEST_FAKE_HOST"

func TestMain(m *testing.M) {
	if line := os.Getenv(fakeHostVar); line != "" {
		fakeHost(line)
		return
	}
	os.Exit(m.Run())
}

// fakeHost logs on stderr, as a host does, that it listens, and line on
// each SIGHUP, its pid for $$, until it is ended. It is the test binary
// and not a shell: a shell started with SIGHUP ignored (nohup, some CI
// runners) cannot trap it, and a Go program can.
func fakeHost(line string) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	fmt.Fprintln(os.Stderr, `{"level":"INFO","msg":"host listening","socket":"s","devices":1}`)
	for range hup {
		fmt.Fprintln(os.Stderr, strings.ReplaceAll(line, "$$", strconv.Itoa(os.Getpid())))
	}
}

// TestServiceRolledBack: a servicing the host rolled back (restored its
// guests in the process that saved them) is a failed servicing of the
// soak, though its pid and count are the servicing's; a successor's
// completion is not.
func TestServiceRolledBack(t *testing.T) {
	for _, tc := range []struct {
		line, want string
	}{
		{`{"level":"WARN","msg":"servicing rolled back","blackout_ms":2,"servicing":1,"exec":false,"pid":$$}`, "servicing 1 rolled back"},
		{`{"level":"INFO","msg":"servicing complete","blackout_ms":2,"servicing":1,"exec":true,"pid":$$}`, ""},
	} {
		t.Setenv(fakeHostVar, tc.line)
		h, err := startHost(os.Args[0], []string{"-test.run=^$"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if err := h.listening(ctx, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		followed := make(chan struct{})
		go func() { h.follow(ctx, nil); close(followed) }()
		ms, err := h.service(1, nil)
		cancel()
		<-followed
		h.proc.Stop(time.Second)
		switch {
		case tc.want == "" && (err != nil || ms != 2):
			t.Errorf("%s: %v ms, %v", tc.line, ms, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v ms, %v; want %q", tc.line, ms, err, tc.want)
		}
	}
}
