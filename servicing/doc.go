// Package servicing hands a running host's open file descriptors and its
// saved state to a new image of the same program: the re-exec at the heart
// of host servicing, where the host process saves every channel and its
// bus state, replaces itself with a fresh (possibly upgraded) binary, and
// the successor restores and resumes while the guest keeps running.
//
// The handover keeps the process id (execve in place), so whoever started
// the host still owns it, and the guest's sockets, shared memory and
// eventfds never close: a connection ends only when the last descriptor of
// one end goes. What crosses execve:
//
//   - named descriptors (a listener, each guest's socket, memory and
//     events): the very ones the predecessor serves on, not duplicates,
//     with close-on-exec cleared for the exec only;
//   - the saved state, in a sealed memfd;
//   - the moment the predecessor paused, so the successor can log the
//     blackout.
//
// The environment variable GOVMBUS_HANDOVER lists them for the successor,
// which adopts them with Inherited before doing anything else: it sets
// close-on-exec on them again (one close_range where the kernel has it)
// and hands them out as numbers, each to be wrapped and checked by
// whoever takes it over. Everything in that variable and memfd is
// checked: a successor started with a malformed handover fails with an
// error rather than guessing.
//
// The alternative is a spawned handover (Spawn): the new image is started
// as a process of its own while the old one still serves, says when it is
// ready, and receives the same descriptors (SCM_RIGHTS over a socket pair,
// 250 per message) and state (a sealed memfd) once the old image has
// paused and saved. The old image must read none of those descriptors
// from then on (a read of a guest's eventfd would take the successor's
// wake-up; the host relinquishes its channels' readers before Hand), and
// exits once the successor says it has taken the handover over. A
// successor that fails before that leaves the guests to the old image,
// which restores them itself. The runtime's and
// the program's start-up are then no part of the blackout; the price is a
// new process id, which the host's supervisor hides from its users.
//
// Only this package knows how the handover travels; the host decides what
// to save and how to restore it.
package servicing
