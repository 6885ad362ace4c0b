package transport

import (
	"bytes"
	"errors"
	"testing"
)

// validFrames are one well-formed frame of each kind with its descriptor
// count; they seed the fuzzer too.
var validFrames = []struct {
	f   frame
	fds int
}{
	{frame{kind: kindHello, role: Host, version: helloVersion}, 0},
	{frame{kind: kindHello, role: Guest, version: helloVersion}, 0},
	{frame{kind: kindMessage, msg: []byte{14, 0, 0, 0, 0, 0, 0, 0, 2, 0, 5, 0}}, 0},
	{frame{kind: kindMessage, msg: bytes.Repeat([]byte{0xAB}, MaxMessageSize)}, 0},
	{frame{kind: kindMemory, size: 1 << 20}, 1},
	{frame{kind: kindEvent, channel: 7, dir: ToHost}, 1},
	{frame{kind: kindEvent, channel: 2047, dir: ToGuest}, 1},
}

func TestFrameRoundTrip(t *testing.T) {
	for _, v := range validFrames {
		b := appendFrame(nil, v.f)
		got, err := decodeFrame(b, v.fds)
		if err != nil {
			t.Fatalf("decode(%x): %v", b, err)
		}
		if !bytes.Equal(appendFrame(nil, got), b) {
			t.Fatalf("round trip of %x changed it", b)
		}
		if _, err := decodeFrame(b, v.fds+1); !errors.Is(err, ErrProtocol) {
			t.Fatalf("%x with an extra descriptor: %v", b, err)
		}
	}
}

func TestFrameGolden(t *testing.T) {
	// The bytes docs/TRANSPORT.md shows.
	for _, tc := range []struct {
		f    frame
		want []byte
	}{
		{frame{kind: kindHello, role: Guest, version: 1},
			[]byte{1, 0, 8, 0, 'V', 'M', 'B', 'T', 1, 0, 2, 0}},
		{frame{kind: kindMessage, msg: []byte{3, 0, 0, 0, 0, 0, 0, 0}},
			[]byte{2, 0, 8, 0, 3, 0, 0, 0, 0, 0, 0, 0}},
		{frame{kind: kindMemory, size: 0x100000},
			[]byte{3, 0, 8, 0, 0, 0, 0x10, 0, 0, 0, 0, 0}},
		{frame{kind: kindEvent, channel: 5, dir: ToGuest},
			[]byte{4, 0, 8, 0, 5, 0, 0, 0, 2, 0, 0, 0}},
	} {
		if got := appendFrame(nil, tc.f); !bytes.Equal(got, tc.want) {
			t.Errorf("frame %+v encodes as % x, want % x", tc.f, got, tc.want)
		}
	}
}

func TestFrameRejects(t *testing.T) {
	hello := appendFrame(nil, frame{kind: kindHello, role: Host, version: 1})
	mut := func(b []byte, i int, v byte) []byte {
		c := bytes.Clone(b)
		c[i] = v
		return c
	}
	for name, tc := range map[string]struct {
		b   []byte
		fds int
	}{
		"empty":          {nil, 0},
		"short header":   {[]byte{2, 0, 1}, 0},
		"flags":          {mut(hello, offFlags, 1), 0},
		"length long":    {mut(hello, offBodyLen, 9), 0},
		"length short":   {mut(hello, offBodyLen, 7), 0},
		"unknown kind":   {[]byte{9, 0, 0, 0}, 0},
		"kind zero":      {[]byte{0, 0, 0, 0}, 0},
		"bad magic":      {mut(hello, headerSize+offMagic, 'X'), 0},
		"bad role":       {mut(hello, headerSize+offRole, 3), 0},
		"hello reserved": {mut(hello, headerSize+offHelloRsvd, 1), 0},
		"hello with fd":  {hello, 1},
		"hello short":    {[]byte{1, 0, 4, 0, 'V', 'M', 'B', 'T'}, 0},
		"empty message":  {[]byte{2, 0, 0, 0}, 0},
		"long message":   {append([]byte{2, 0, 241, 0}, make([]byte, 241)...), 0},
		"message fd":     {[]byte{2, 0, 1, 0, 1}, 1},
		"memory no fd":   {appendFrame(nil, frame{kind: kindMemory, size: 4096}), 0},
		"memory two fds": {appendFrame(nil, frame{kind: kindMemory, size: 4096}), 2},
		"memory short":   {[]byte{3, 0, 4, 0, 0, 0, 1, 0}, 1},
		"event dir 0":    {[]byte{4, 0, 8, 0, 1, 0, 0, 0, 0, 0, 0, 0}, 1},
		"event dir 3":    {[]byte{4, 0, 8, 0, 1, 0, 0, 0, 3, 0, 0, 0}, 1},
		"event reserved": {[]byte{4, 0, 8, 0, 1, 0, 0, 0, 1, 0, 1, 0}, 1},
		"event no fd":    {[]byte{4, 0, 8, 0, 1, 0, 0, 0, 1, 0, 0, 0}, 0},
	} {
		f, err := decodeFrame(tc.b, tc.fds)
		var fe *FrameError
		if !errors.Is(err, ErrProtocol) || !errors.As(err, &fe) {
			t.Errorf("%s: got %v", name, err)
		}
		if f.kind != 0 || f.msg != nil {
			t.Errorf("%s: error with a frame %+v", name, f)
		}
	}
	// Another version decodes (so the caller can name it) with the rest
	// checked.
	f, err := decodeFrame(mut(hello, headerSize+offVersion, 2), 0)
	if err != nil || f.version != 2 {
		t.Errorf("version 2 hello: %+v, %v", f, err)
	}
}

func FuzzFrame(f *testing.F) {
	for _, v := range validFrames {
		f.Add(appendFrame(nil, v.f), uint8(v.fds))
	}
	f.Add([]byte{}, uint8(0))
	f.Add([]byte{2, 0, 0xff, 0xff}, uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, nfds uint8) {
		in := bytes.Clone(b)
		fr, err := decodeFrame(b, int(nfds))
		if !bytes.Equal(in, b) {
			t.Fatal("decodeFrame modified its input")
		}
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not match ErrProtocol", err)
			}
			if fr.kind != 0 || fr.msg != nil {
				t.Fatalf("error with a frame %+v", fr)
			}
			return
		}
		if int(nfds) != fdsFor(fr.kind) {
			t.Fatalf("accepted %d descriptors for kind %d", nfds, fr.kind)
		}
		if len(b) > maxFrameSize {
			t.Fatalf("accepted a %d-byte frame", len(b))
		}
		if out := appendFrame(nil, fr); !bytes.Equal(out, b) {
			t.Fatalf("re-encoding % x gave % x", b, out)
		}
	})
}
