// Package soak runs `vmbus soak`: one host process (echo channels and a
// blk disk in a temporary file) and many guest processes running the load
// of package guestload, all this binary, for a long time; the host is
// serviced (SIGHUP) at a fixed interval and sampled (RSS, descriptors,
// threads, goroutines) at another; then every guest's result is checked
// and the memory rule applied (JudgeRSS). The command line parses the
// flags and prints the progress and the summary.
//
// What the host says (it listens, a servicing completed or failed, it
// logged an error) soak learns from the host's JSON log; hostlog.go is
// the one place that reads it.
package soak
