package chaos

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// A transport session speaks docs/TRANSPORT.md wrongly on a socket of
// its own: the frames are built here by hand, as the transport package
// would never send them.

// Frame kinds and the hello (docs/TRANSPORT.md).
const (
	frameHello   = 1
	frameMessage = 2
	frameMemory  = 3
	frameEvent   = 4
	helloMagic   = 0x54424D56
	maxFrame     = 244
)

func frame(kind, flags byte, body []byte) []byte {
	b := make([]byte, 4, 4+len(body))
	b[0], b[1] = kind, flags
	binary.LittleEndian.PutUint16(b[2:], uint16(len(body)))
	return append(b, body...)
}

func guestHello() []byte {
	var body [8]byte
	binary.LittleEndian.PutUint32(body[0:], helloMagic)
	binary.LittleEndian.PutUint16(body[4:], 1)
	body[6] = 2 // the guest
	return frame(frameHello, 0, body[:])
}

// badFrames are the transport violations a session picks from.
var badFrames = []struct {
	kind string
	make func(rng *rand.Rand) (b []byte, fd int, hello bool)
}{
	{"frame-oversized", func(rng *rand.Rand) ([]byte, int, bool) {
		return frame(frameMessage, 0, make([]byte, maxFrame-4+1+rng.IntN(800))), -1, true
	}},
	{"frame-unknown-kind", func(rng *rand.Rand) ([]byte, int, bool) {
		return frame(byte(5+rng.IntN(250)), 0, make([]byte, 8)), -1, true
	}},
	{"frame-bad-flags", func(rng *rand.Rand) ([]byte, int, bool) {
		return frame(frameMessage, byte(1+rng.IntN(255)), make([]byte, 8)), -1, true
	}},
	{"frame-length-mismatch", func(rng *rand.Rand) ([]byte, int, bool) {
		b := frame(frameMessage, 0, make([]byte, 16))
		binary.LittleEndian.PutUint16(b[2:], uint16(17+rng.IntN(200)))
		return b, -1, true
	}},
	{"frame-before-hello", func(*rand.Rand) ([]byte, int, bool) {
		return frame(frameMessage, 0, []byte{3, 0, 0, 0, 0, 0, 0, 0}), -1, false
	}},
	{"frame-second-hello", func(*rand.Rand) ([]byte, int, bool) {
		return guestHello(), -1, true
	}},
	{"frame-empty", func(*rand.Rand) ([]byte, int, bool) {
		return nil, -1, true
	}},
	{"frame-fd-on-message", func(*rand.Rand) ([]byte, int, bool) {
		fd, _ := unix.Eventfd(0, unix.EFD_CLOEXEC)
		return frame(frameMessage, 0, []byte{3, 0, 0, 0, 0, 0, 0, 0}), fd, true
	}},
	{"frame-event-not-eventfd", func(rng *rand.Rand) ([]byte, int, bool) {
		var p [2]int
		if unix.Pipe2(p[:], unix.O_CLOEXEC) != nil {
			return nil, -1, true
		}
		unix.Close(p[1])
		body := make([]byte, 8)
		binary.LittleEndian.PutUint32(body, uint32(1+rng.IntN(4)))
		body[4] = 1
		return frame(frameEvent, 0, body), p[0], true
	}},
	{"frame-memory-unsealed", func(*rand.Rand) ([]byte, int, bool) {
		fd, err := unix.MemfdCreate("chaos", unix.MFD_CLOEXEC)
		if err != nil {
			return nil, -1, true
		}
		unix.Ftruncate(fd, 1<<16) //nolint:errcheck // a memfd of any size is as bad
		body := make([]byte, 8)
		binary.LittleEndian.PutUint64(body, 1<<16)
		return frame(frameMemory, 0, body), fd, true
	}},
	{"frame-memory-size-lie", func(*rand.Rand) ([]byte, int, bool) {
		body := make([]byte, 8)
		binary.LittleEndian.PutUint64(body, 1<<40)
		return frame(frameMemory, 0, body), -1, true
	}},
}

// transportSession connects, sends one frame that breaks the transport
// protocol, and watches whether the host hangs up.
func transportSession(ctx context.Context, cfg Config, rng *rand.Rand, rep *Report) error {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	nc, err := d.DialContext(dctx, "unixpacket", cfg.Socket)
	if err != nil {
		return err
	}
	uc := nc.(*net.UnixConn)
	defer uc.Close()
	rep.Sessions++
	bf := badFrames[rng.IntN(len(badFrames))]
	b, fd, hello := bf.make(rng)
	if fd >= 0 {
		defer unix.Close(fd)
	}
	if hello {
		if _, _, err := uc.WriteMsgUnix(guestHello(), nil, nil); err != nil {
			rep.add(bf.kind, outDisconnected)
			return nil
		}
	}
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	if _, _, err := uc.WriteMsgUnix(b, oob, nil); err != nil {
		rep.add(bf.kind, "not sent")
		return nil
	}
	// The host's hello comes first; then end-of-file if it hung up.
	buf := make([]byte, 512)
	uc.SetReadDeadline(time.Now().Add(500 * time.Millisecond)) //nolint:errcheck
	for {
		n, _, err := uc.ReadFromUnix(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				rep.add(bf.kind, outKept)
			} else {
				rep.add(bf.kind, outDisconnected)
				rep.SessionsEndedByHost++
			}
			return nil
		}
		if n == 0 {
			rep.add(bf.kind, outDisconnected)
			rep.SessionsEndedByHost++
			return nil
		}
	}
}
