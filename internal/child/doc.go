// Package child runs the processes `vmbus demo` and `vmbus soak` start:
// this binary with other arguments (a host, a guest), each in its own
// process group and killed by the kernel should its parent die first. It
// reads a child's stdout as lines, keeps the last lines of its stderr for
// error messages and hands each stderr line to the caller, and stops a
// child in order (SIGTERM to its group, SIGKILL after a bound).
//
// It knows nothing of what the children print: the guest's load lines are
// package guestload's, the host's log lines are read by demo and soak.
package child
