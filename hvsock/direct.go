package hvsock

import (
	"net"
	"syscall"
	"unsafe"

	"github.com/govmbus/govmbus/pipe"
)

// The guest's bytes reach the local socket without waking the relay's
// reader: while the toLocal flow waits in Read with nothing pending, the
// pipe hands a batch of packets to direct on the channel's receive
// goroutine (pipe.Conn.SetDirect), which writes them to the socket with
// one non-blocking writev. What the socket does not take (it is full, or
// the write failed) stays held in the pipe and wakes the flow, whose own
// Write then waits for room or meets the error: back-pressure, errors and
// the bytes a servicing carries (the pipe's Unread) are the flow's, as
// before. A pause's past deadline on the socket fails the write, so no
// byte goes out once a pause has stopped the flows.

// localSendBuffer is the send buffer (SO_SNDBUF) the relay asks for on a
// local Unix socket; the kernel doubles it, to 1 MiB. A direct write goes
// only while the socket has room, and with the default (208 KiB) a local
// reader a little behind left it full, every batch back on the flow's
// goroutine: with both, BenchmarkHVSockRelayStream moved 1.5x the bytes
// of either alone. It is the kernel's memory, bounded per guest by
// MaxConnsPerGuest; a TCP socket keeps the kernel's own sizing, which a
// fixed size would turn off.
const localSendBuffer = 512 << 10

// passDirect sets the pipe's direct function, if the local socket has a
// descriptor to write to (a *net.UnixConn or *net.TCPConn has one).
func (rc *relayed) passDirect() {
	if uc, ok := rc.local.(*net.UnixConn); ok {
		uc.SetWriteBuffer(localSendBuffer) //nolint:errcheck // a smaller buffer costs only speed
	}
	sc, ok := rc.local.(syscall.Conn)
	if !ok || rc.gc.host == nil {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	rc.raw = raw
	rc.iov = make([]syscall.Iovec, 0, pipe.DefaultMaxPackets) // a batch's packets, most often
	rc.rawFn = rc.writeFD
	rc.gc.host.pipe.SetDirect(rc.direct)
}

// direct writes bufs to the local socket without waiting and returns how
// much went. On the channel's receive goroutine, one call at a time.
func (rc *relayed) direct(bufs [][]byte) int {
	iov := rc.iov[:0]
	for _, b := range bufs {
		if len(b) > 0 {
			v := syscall.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			iov = append(iov, v)
		}
	}
	rc.iov, rc.rawN = iov, 0
	if len(iov) > 0 {
		// RawConn.Write fails at once, writing nothing, past the
		// socket's write deadline or once it is closed.
		rc.raw.Write(rc.rawFn) //nolint:errcheck // what was not written is the flow's to retry
	}
	clear(iov) // holds no pointer into the packets
	rc.sent.Add(int64(rc.rawN))
	return rc.rawN
}

// writeFD is the one writev of direct; true: done, whatever came of it
// (false would make RawConn.Write wait for room, on the receive
// goroutine).
func (rc *relayed) writeFD(fd uintptr) bool {
	n, _, errno := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&rc.iov[0])), uintptr(len(rc.iov)))
	if errno == 0 {
		rc.rawN = int(n)
	}
	return true
}
