package stopsignal

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/govmbus/govmbus/servicing"
)

func TestHandoverVarIsServicings(t *testing.T) {
	if handoverVar != servicing.EnvVar {
		t.Fatalf("handoverVar %q, servicing.EnvVar %q", handoverVar, servicing.EnvVar)
	}
}

// childVar makes the test binary the child of TestSignalBeforeNotifyContext.
const childVar = "STOPSIGNAL_TEST_CHILD"

// TestSignalBeforeNotifyContext: in a process with the handover variable,
// a SIGTERM that comes before NotifyContext neither ends the process nor
// is lost: the context NotifyContext returns is done at once. Without the
// variable the child dies of it, as any Go program does.
func TestSignalBeforeNotifyContext(t *testing.T) {
	if os.Getenv(childVar) != "" {
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		time.Sleep(50 * time.Millisecond) // delivered meanwhile
		ctx, stop := NotifyContext(context.Background())
		defer stop()
		select {
		case <-ctx.Done():
			os.Exit(0)
		case <-time.After(time.Second):
			os.Exit(3)
		}
	}
	for _, handover := range []bool{true, false} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSignalBeforeNotifyContext$")
		cmd.Env = append(os.Environ(), childVar+"=1")
		if handover {
			cmd.Env = append(cmd.Env, handoverVar+"=v1;test")
		}
		err := cmd.Run()
		code := cmd.ProcessState.ExitCode() // -1: ended by a signal
		switch {
		case handover && err != nil:
			t.Errorf("with the handover variable: %v (exit %d), want the context done", err, code)
		case !handover && code != -1:
			t.Errorf("without the handover variable: exit %d, want the default action's end (SIGTERM)", code)
		}
	}
}

// TestNotifyContextCatches: without an early signal, the context ends at
// the first SIGTERM after NotifyContext, and not before.
func TestNotifyContextCatches(t *testing.T) {
	ctx, stop := NotifyContext(context.Background())
	defer stop()
	if ctx.Err() != nil {
		t.Fatal("done before any signal")
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM did not end the context")
	}
}
