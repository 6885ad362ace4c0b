// Package ringbench drives one writer and one reader goroutine on one ring,
// the way `vmbus bench ring` and the Go benchmarks measure the ring's
// throughput. It lives apart from package ring because it owns goroutines,
// eventfds and timing, none of which the ring itself needs.
package ringbench
