package pipe

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/testbus"
	"github.com/govmbus/govmbus/ring"
)

// What a hostile host does to the guest-bound ring, one script byte each
// (the high bits are the action's argument).
//
// A write index moved back inside the batch a reader has not committed
// is ring.Reader's to catch (ring's TestWriteIndexMovedBack). Moved back
// over committed packets it is no different from a host that writes
// those packets again: the host resends, which no reader can tell.
const (
	ringData      = iota // a packet of the next 1 to 64 stream bytes
	ringScribble         // overwrite everything the guest has consumed, and the free space
	ringIndexWild        // a write index past the end of the ring
	ringActions
)

// streamByte is byte i of the stream the host sends.
func streamByte(i int) byte { return byte(i % 251) }

// hostileStream writes the stream into its channel's guest-bound ring
// as the script says, then an end of stream unless it broke the ring.
type hostileStream struct {
	script   []byte
	broke    bool
	finished chan struct{}
}

func (h *hostileStream) serve(ctx context.Context, ch *host.Channel) {
	defer close(h.finished)
	w, err := ring.NewWriter(ch.Out)
	if err != nil {
		return
	}
	data := ch.Out[ring.ControlSize:]
	index := func(off int) uint32 { return binary.LittleEndian.Uint32(ch.Out[off:]) }
	var (
		pos int // stream bytes written
		buf [HeaderSize + 64]byte
	)
	put := func(hdr []byte) bool {
		for {
			err := w.WriteInBand(0, 0, hdr)
			if err == nil {
				break
			}
			if !errors.Is(err, ring.ErrFull) {
				return false
			}
			// The guest reads as it likes: wait for room, at most as
			// long as ctx lets us.
			if ready, err := w.WaitFor(len(hdr), 16); err != nil {
				return false
			} else if !ready {
				if ch.FromGuest.Wait(ctx) != nil {
					return false
				}
			}
		}
		if w.Commit() {
			ch.ToGuest.Signal() //nolint:errcheck // the guest may have gone
		}
		ch.ToGuest.Signal() //nolint:errcheck
		return true
	}
	for _, op := range h.script {
		switch op % ringActions {
		case ringData:
			n := 1 + int(op>>2)                       // 1 to 64
			binary.LittleEndian.PutUint32(buf[0:], 1) // data
			binary.LittleEndian.PutUint32(buf[4:], uint32(n))
			for i := range n {
				buf[HeaderSize+i] = streamByte(pos + i)
			}
			if !put(buf[:HeaderSize+n]) {
				return
			}
			pos += n
		case ringScribble:
			in, out := index(ring.WriteIndexOffset), index(ring.ReadIndexOffset)
			for i := range data {
				// Everything outside [out, in) is the guest's past or
				// free space: the host may write there at will.
				off := uint32(i)
				unread := (in >= out && off >= out && off < in) || (in < out && (off >= out || off < in))
				if !unread {
					data[i] = op
				}
			}
			ch.ToGuest.Signal() //nolint:errcheck
		case ringIndexWild:
			binary.LittleEndian.PutUint32(ch.Out[ring.WriteIndexOffset:], uint32(len(data))+uint32(op))
			ch.ToGuest.Signal() //nolint:errcheck
			h.broke = true
			return
		}
	}
	binary.LittleEndian.PutUint32(buf[0:], 1)
	binary.LittleEndian.PutUint32(buf[4:], 0) // end of stream
	put(buf[:HeaderSize])
}

// FuzzRingHostile: a host writes a byte stream into a pipe's guest-bound
// ring and, as the input says, scribbles over what the guest consumed,
// moves the write index back over published packets, or sets it wild.
// The guest's Conn delivers a prefix of the stream, in order, each byte
// once (it copies each packet out of the ring once, and takes no index
// back), and then ends by itself: io.EOF after the host's end of stream,
// ErrMalformed for a broken ring (or the open fails, if the ring broke
// before it).
func FuzzRingHostile(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{ringData | 4<<2, ringData | 9<<2, ringScribble | 0xC0, ringData | 30<<2})
	f.Add([]byte{ringData | 63<<2, ringIndexWild | 4})
	// A lap and a half of the ring in packets of 64 bytes, with the
	// consumed lap scribbled over twice on the way.
	lap := bytes.Repeat([]byte{ringData | 31<<2}, 100)
	lap[40], lap[80] = ringScribble|0xFC, ringScribble
	f.Add(lap)
	f.Add(append(lap, ringIndexWild))
	f.Fuzz(func(t *testing.T, script []byte) {
		if len(script) > 200 {
			script = script[:200]
		}
		h := &hostileStream{script: script, finished: make(chan struct{})}
		b := testbus.New(t, testbus.Config{Host: host.Config{Devices: []host.Device{&testbus.RawDevice{
			Spec:  host.OfferSpec{InterfaceType: testType, InterfaceInstance: testInst},
			Serve: h.serve,
		}}}})
		cch := channel.NewClient()
		must(t, cch.SetClient(b.Client))
		must(t, cch.SetInterface(testType, testInst))
		must(t, cch.SetRingPages(2, 2)) // one data page: the stream wraps
		c, err := New(cch, Config{})
		must(t, err)
		defer func() {
			c.Close()
			cch.Cleanup()
		}()
		must(t, cch.Enable())
		got := make(chan error, 1)
		var read []byte
		go func() {
			buf := make([]byte, 97)
			for {
				n, err := c.Read(buf)
				read = append(read, buf[:n]...)
				if err != nil {
					got <- err
					return
				}
			}
		}()
		select {
		case <-h.finished:
		case <-time.After(testbus.Timeout):
			t.Fatal("the host did not finish its script")
		}
		// A ring broken before the guest's open fails the open, which
		// the channel tells a client only by its state (hvsock watches
		// it while it opens): a bare Conn waits for Close then.
		var rerr error
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		deadline := time.After(testbus.Timeout)
		openFailed := false
	wait:
		for {
			select {
			case rerr = <-got:
				break wait
			case <-tick.C:
				if h.broke && !openFailed && cch.State() == channel.StateClosed && !c.isOpened() {
					openFailed = true
					c.Close()
				}
			case <-deadline:
				c.Close()
				<-got
				t.Fatalf("Read hung after the host's end of stream or its broken ring (channel %v)", cch.State())
			}
		}
		if openFailed {
			return
		}
		for i, x := range read {
			if x != streamByte(i) {
				t.Fatalf("byte %d of the stream read as %#x, want %#x: out of order, twice or scribbled", i, x, streamByte(i))
			}
		}
		if want := io.EOF; h.broke && !errors.Is(rerr, ErrMalformed) || !h.broke && !errors.Is(rerr, want) {
			t.Fatalf("Read ended with %v (host broke the ring: %v)", rerr, h.broke)
		}
	})
}

// isOpened reports whether the Conn's channel opened once.
func (c *Conn) isOpened() bool {
	select {
	case <-c.opened:
		return true
	default:
		return false
	}
}
