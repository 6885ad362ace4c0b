package channel

import "runtime"

// goid is the id of the calling goroutine, read from the header line of
// its stack trace ("goroutine 18 [running]:"). Go gives no other way to
// tell whether a lifecycle call comes from inside a state-change callback
// (which runs on the channel's worker goroutine and must be refused: the
// worker would wait for itself) or from another goroutine (which must
// simply wait its turn). It costs a stack trace (microseconds, more in a
// fresh process), so it is used only for channels with callbacks: by the
// worker a while after it starts or before its first callback
// (learnWorkerID), and by a lifecycle call made while one runs; never on
// packet paths, nor when a worker starts. The package documentation
// (Callbacks) says why the check is kept rather than left to a
// precondition.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	const prefix = "goroutine "
	if len(b) < len(prefix) {
		return 0
	}
	var id uint64
	for _, ch := range b[len(prefix):] {
		if ch < '0' || ch > '9' {
			break
		}
		id = id*10 + uint64(ch-'0')
	}
	return id
}
