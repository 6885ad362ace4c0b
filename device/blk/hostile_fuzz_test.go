package blk

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/testbus"
	"github.com/govmbus/govmbus/ring"
)

// The reactions of a hostile disk to each request, one script byte each.
const (
	diskGood       = iota // what Server would answer; READ data written
	diskTwice             // that completion, twice
	diskStrangerTx        // a completion for a transaction never sent, then the good one
	diskStall             // no completion: the disk is closed under the request
	diskNoData            // READ: success, but nothing written into the ranges
	diskShort             // a completion shorter than a response
	diskWrongValue        // success moving another number of bytes, or a failure status
	diskInBand            // an in-band packet carrying the request's transaction id, then the good completion
	diskCorrupt           // the write index moved past the end of the ring
	diskReactions
)

// readByte is what the hostile disk writes at disk offset off for a READ:
// never zero (a bounce buffer cleared before the request) nor writeByte.
func readByte(off uint64) byte { return 0x10 | byte(off&0x0F) }

// writeByte is the data of every WRITE.
const writeByte = 0xC3

// hostileDisk serves blk requests from its rings as the script says.
type hostileDisk struct {
	script []byte
	abort  func() // cancels the guest's request in progress
	broke  bool   // the ring is corrupt: nothing more is written
}

func (h *hostileDisk) next() byte {
	if len(h.script) == 0 {
		return diskGood
	}
	b := h.script[0]
	h.script = h.script[1:]
	return b
}

// request is a guest packet, copied out of the ring.
type request struct {
	typ     ring.PacketType
	txid    uint64
	payload []byte
	ranges  []gpa.Range
}

func (h *hostileDisk) serve(ctx context.Context, ch *host.Channel) {
	r, err := ring.NewReader(ch.In)
	if err != nil {
		return
	}
	w, err := ring.NewWriter(ch.Out)
	if err != nil {
		return
	}
	for {
		var reqs []request
		for {
			var p ring.Packet
			if err := r.Next(&p); err != nil {
				break
			}
			q := request{typ: p.Type, txid: p.TransactionID, payload: p.AppendPayload(nil)}
			for _, rg := range p.Ranges {
				q.ranges = append(q.ranges, gpa.Range{ByteCount: rg.ByteCount, ByteOffset: rg.ByteOffset, PFNs: append([]uint64(nil), rg.PFNs...)})
			}
			reqs = append(reqs, q)
		}
		if r.Commit() {
			ch.ToGuest.Signal() //nolint:errcheck // the guest may have gone
		}
		for _, q := range reqs {
			h.react(ch, w, q)
		}
		if h.broke {
			ch.ToGuest.Signal() //nolint:errcheck // the guest may have gone
		} else if w.Commit() || len(reqs) > 0 {
			ch.ToGuest.Signal() //nolint:errcheck // the guest may have gone
		}
		if len(reqs) == 0 {
			if err := ch.FromGuest.Wait(ctx); err != nil {
				return
			}
		}
	}
}

func (h *hostileDisk) react(ch *host.Channel, w *ring.Writer, q request) {
	if h.broke {
		return
	}
	req, st := ParseRequest(q.payload)
	resp := Response{Status: st}
	if st == StatusOK {
		switch req.Op {
		case OpIdentify:
			resp = Response{BlockSize: BlockSize, Size: 64 << 10, Value: 8 << 10}
		case OpRead, OpWrite:
			resp.Value = req.Length
		}
	}
	var b [ResponseSize]byte
	good := func() {
		resp.Marshal(b[:])
		w.WriteCompletion(q.txid, b[:]) //nolint:errcheck // a full ring loses it, as a hostile host may
	}
	writeData := func() {
		off := req.Offset
		for _, rg := range q.ranges {
			data := make([]byte, rg.ByteCount)
			for i := range data {
				data[i] = readByte(off + uint64(i))
			}
			ch.Memory.WriteRange(rg, data) //nolint:errcheck // a bad range is the guest's to answer for
			off += uint64(rg.ByteCount)
		}
	}
	r := h.next()
	if st == StatusOK && req.Op == OpRead && r%diskReactions != diskNoData {
		writeData()
	}
	switch r % diskReactions {
	case diskGood, diskNoData:
		good()
	case diskTwice:
		good()
		good()
	case diskStrangerTx:
		resp.Marshal(b[:])
		w.WriteCompletion(q.txid^uint64(h.next())<<32^1, b[:]) //nolint:errcheck
		good()
	case diskStall:
		h.abort()
	case diskShort:
		resp.Marshal(b[:])
		w.WriteCompletion(q.txid, b[:h.next()%ResponseSize]) //nolint:errcheck
	case diskWrongValue:
		if d := h.next(); d&1 != 0 {
			resp.Status = Status(d >> 1)
		} else {
			resp.Value ^= uint32(d) + 2
			resp.Size ^= uint64(d) << 56 // IDENTIFY: an implausible disk
		}
		good()
	case diskInBand:
		resp.Marshal(b[:])
		w.WriteInBand(q.txid, 0, b[:]) //nolint:errcheck
		good()
	case diskCorrupt:
		good()
		w.Commit()
		// The write index the guest reads, moved where no packet is.
		idx := uint32(len(ch.Out)) + uint32(h.next())<<3
		ch.Out[0], ch.Out[1], ch.Out[2], ch.Out[3] = byte(idx), byte(idx>>8), byte(idx>>16), byte(idx>>24)
		h.broke = true
	}
}

// isHostFault reports whether err is one a hostile disk may cause: its
// fault, the channel's end, a failure status or the caller's context.
func isHostFault(err error) bool {
	var st Status
	return errors.Is(err, guest.ErrProtocol) || errors.Is(err, ErrClosed) ||
		errors.As(err, &st) || errors.Is(err, context.Canceled)
}

// FuzzDiskHostile runs a Disk against a host that answers each request as
// the input says: completions twice, for transactions never sent, short,
// with a wrong byte count or status, in-band packets instead, none, READ
// success with no data, a corrupt ring. The Disk must not panic or hang;
// every call ends in success or an error naming the host (or the channel's
// end); and a READ that succeeds holds only what the host wrote for it,
// or zeroes where it wrote nothing: never stale bytes of an earlier
// request (a WRITE's, or a READ's of other offsets).
func FuzzDiskHostile(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{diskGood, diskNoData})
	f.Add([]byte{diskGood, diskGood, diskGood, diskNoData})
	f.Add([]byte{diskGood, diskTwice, diskTwice, diskTwice})
	f.Add([]byte{diskGood, diskStrangerTx, 1, diskShort, 7})
	f.Add([]byte{diskWrongValue, 1})
	f.Add([]byte{diskGood, diskWrongValue, 2, diskInBand})
	f.Add([]byte{diskGood, diskStall})
	f.Add([]byte{diskGood, diskCorrupt, 3})
	f.Fuzz(func(t *testing.T, script []byte) {
		var (
			mu      sync.Mutex
			cancel  context.CancelFunc
			disk    *Disk
			aborted bool
			closing sync.Once
			closed  sync.WaitGroup
		)
		closeDisk := func() { closing.Do(func() { disk.Close() }) } //nolint:errcheck // the calls' errors are checked
		hd := &hostileDisk{script: script, abort: func() {
			mu.Lock()
			defer mu.Unlock()
			aborted = true
			cancel()
			if disk != nil {
				closed.Go(closeDisk) // ends the request the host holds
			}
		}}
		defer closed.Wait()
		b := testbus.New(t, testbus.Config{
			Host: host.Config{Devices: []host.Device{&testbus.RawDevice{
				Spec:  host.OfferSpec{InterfaceType: InterfaceType, InterfaceInstance: InterfaceInstance},
				Serve: hd.serve,
			}}},
			Guest: guest.Config{MemorySize: 2 << 20},
		})
		ctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		mu.Lock()
		cancel = c
		mu.Unlock()
		done := make(chan struct{})
		go func() {
			defer close(done)
			d, err := Open(ctx, b.Client, ClientConfig{InFlight: 2})
			if err != nil {
				if !isHostFault(err) {
					t.Errorf("Open: %v: names neither the host nor the channel's end", err)
				}
				return
			}
			mu.Lock()
			disk = d
			if aborted {
				closed.Go(closeDisk)
			}
			mu.Unlock()
			defer closeDisk()
			read := func(off int64) {
				p := make([]byte, 12<<10)
				for i := range p {
					p[i] = 0xEE
				}
				n, err := d.ReadAt(p, off)
				if err != nil {
					if !isHostFault(err) && !errors.Is(err, io.EOF) {
						t.Errorf("ReadAt: %v: names neither the host nor the channel's end", err)
					}
					return
				}
				for i, x := range p[:n] {
					if x != 0 && x != readByte(uint64(off)+uint64(i)) {
						t.Errorf("ReadAt %d succeeded with byte %d = %#x, which the host did not write for it", off, i, x)
						return
					}
				}
			}
			w := make([]byte, 16<<10)
			for i := range w {
				w[i] = writeByte
			}
			if _, err := d.WriteAt(w, 0); err != nil && !isHostFault(err) {
				t.Errorf("WriteAt: %v: names neither the host nor the channel's end", err)
			}
			read(4096)
			read(4096 + 5)
			if err := d.Flush(); err != nil && !isHostFault(err) {
				t.Errorf("Flush: %v: names neither the host nor the channel's end", err)
			}
			read(3)
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("the disk hung")
		}
	})
}
