//go:build race

package main

// raceEnabled shortens the longest hvsock stream: under the race detector
// the test process's own copying and hashing take most of the time.
const raceEnabled = true
