// Package stopsignal catches SIGINT and SIGTERM from the first moments of
// a host image that an exec servicing started. The exec resets the old
// image's handlers, and until the new image asks for the signals again
// one ends it by Go's default action instead of stopping it in order.
// This package's init asks for them as soon as os/signal can (it imports
// nothing else of weight, so it is initialised among the first packages),
// about two milliseconds before main runs in `vmbus host`; NotifyContext
// then hands on what came meanwhile. A program that embeds a
// hosting.Daemon imports it from its main package and makes its stop
// context with NotifyContext (package hosting, Stopping).
package stopsignal

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// handoverVar is servicing.EnvVar, set in an image an exec servicing
// started (not imported: servicing's imports would put this package's
// init later).
const handoverVar = "GOVMBUS_HANDOVER"

// early holds what init caught, nil in a process no exec servicing
// started (where SIGTERM keeps its default until NotifyContext).
var early chan os.Signal

func init() {
	if os.Getenv(handoverVar) == "" {
		return
	}
	early = make(chan os.Signal, 1)
	signal.Notify(early, syscall.SIGINT, syscall.SIGTERM)
}

// NotifyContext is signal.NotifyContext(parent, SIGINT, SIGTERM), done
// at once if one came since init.
func NotifyContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	if early == nil {
		return ctx, stop
	}
	// Both are asked for here: a signal from now on reaches ctx.
	signal.Stop(early)
	select {
	case <-early:
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		return ctx, func() { cancel(); stop() }
	default:
	}
	return ctx, stop
}
