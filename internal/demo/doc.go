// Package demo runs `vmbus demo`: a host process (echo and a blk disk in a
// temporary file) and a guest process running the load of package
// guestload, both this binary; the host is serviced (SIGHUP) at even
// spacing while the traffic flows; then the figures are gathered and every
// check applied (Result). The command line parses the flags, shows the
// progress and prints the summary.
//
// What the host says (it listens, a servicing completed and its blackout)
// demo learns from the host's JSON log; hostlog.go is the one place that
// reads it.
package demo
