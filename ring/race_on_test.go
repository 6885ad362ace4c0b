//go:build race

package ring

// raceEnabled shortens the longest streams: the race detector makes each
// packet about twenty times slower and adds nothing after the first
// thousands of wrap-arounds.
const raceEnabled = true
