package hosting

import (
	"os"
	"os/signal"
	"syscall"
)

// SIGHUP asks for a servicing. The process must survive every one, from
// the moment it asks for them (CatchHangup) on, across each exec, in which
// it ignores them (holdHUP): an exec keeps an ignored signal ignored but
// resets a caught one to its default action, which ends the process, and
// the new image asks for them again only once it runs.
//
// The Go runtime falls back to a signal's disposition from before
// signal.Notify for a SIGHUP it does not hand to a channel, and
// signal.Ignore stops the runtime's handling one step before it sets the
// disposition to ignore: a SIGHUP taken in between (a storm of them makes
// that likely on a loaded machine) got the disposition the process
// started with. For a host started by a user, that is the default action:
// the host died at its first servicing. CatchHangup ignores SIGHUP before
// it catches it, so that the disposition the runtime falls back to is to
// ignore it.

// CatchHangup makes every SIGHUP from now on a request on the channel it
// returns (several that come before one is taken are one request): a
// daemon's Config.Hangup, for a program whose SIGHUP asks for a
// servicing. signal.Stop ends it.
func CatchHangup() chan os.Signal {
	signal.Ignore(syscall.SIGHUP)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup
}

// holdHUP ignores SIGHUP until an exec (the new image catches it anew),
// or until releaseHUP after an exec that failed: the requests meanwhile
// are merged into the servicing under way.
func holdHUP() { signal.Ignore(syscall.SIGHUP) }

// releaseHUP makes SIGHUP a request on hup again, after holdHUP.
func releaseHUP(hup chan<- os.Signal) { signal.Notify(hup, syscall.SIGHUP) }
