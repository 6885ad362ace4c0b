// Package hoststub is a stand-in for a host process in tests of code that
// watches one through its JSON log (vmbus demo, soak): the test binary,
// re-run with Var set, logs that it listens and a given line on each
// SIGHUP. It is the test binary and not a shell: a shell started with
// SIGHUP ignored (nohup, some CI runners) cannot trap it, and a Go program
// can.
package hoststub

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// RolledBack and Complete are the host's log lines for servicing 1 rolled
// back in the process that saved it and completed by a successor, with
// "$$" for the process id (Var's values for the tests of both outcomes).
const (
	RolledBack = `{"level":"WARN","msg":"servicing rolled back","blackout_ms":2,"servicing":1,"exec":false,"pid":$$}`
	Complete   = `{"level":"INFO","msg":"servicing complete","blackout_ms":2,"servicing":1,"exec":true,"pid":$$}`
)

// Var, set in a test binary's environment, makes Serve serve: its value
// is the line to log on SIGHUP, "$$" in it replaced by the process id.
const Var = "GOVMBUS_TEST_HOST_STUB"

// Serve, if Var is set, logs on stderr, as a host does, that it listens,
// and Var's line on each SIGHUP, until the process is ended; it returns
// false at once if Var is not set. Call it first in TestMain.
func Serve() bool {
	line := os.Getenv(Var)
	if line == "" {
		return false
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	fmt.Fprintln(os.Stderr, `{"level":"INFO","msg":"host listening","socket":"s","devices":1}`)
	for range hup {
		fmt.Fprintln(os.Stderr, strings.ReplaceAll(line, "$$", strconv.Itoa(os.Getpid())))
	}
	return true
}
