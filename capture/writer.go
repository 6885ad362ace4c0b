package capture

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// DefaultSnapLen is the snap length when Options leaves it 0: whole
// packets of every device this project has (blk's largest transfer is
// carried by reference, not in the ring).
const DefaultSnapLen = 65536

// MaxSnapLen bounds Options.SnapLen, so that no block passes what a
// Reader takes.
const MaxSnapLen = 1 << 20

// flushEvery is how long a record may sit in the Writer's buffer: a
// capture read while the host runs is at most this far behind.
const flushEvery = 200 * time.Millisecond

// Options configure a Writer.
type Options struct {
	// SnapLen is how many bytes of each record (after its header) are
	// kept; the rest is cut and the record marked FlagTruncated. 0 is
	// DefaultSnapLen. Events are kept whole.
	SnapLen int
	// MaxBytes, if positive, bounds the file's size: the record that
	// would take it past MaxBytes, and every one after it, is dropped
	// (Stats.Dropped counts them) and the file ends with the last whole
	// record under the bound. The capture stops rather than rotates, so
	// that a servicing's successor finds the one file it appends to.
	MaxBytes int64
}

// Stats count a Writer's records.
type Stats struct {
	Records uint64 // records written
	Dropped uint64 // records not written: past MaxBytes, suspended, or after a write error
	Bytes   int64  // the file's size, as written
}

// Writer writes a capture. It is safe for concurrent use: records are
// framed and written under one lock, in the order they are given.
type Writer struct {
	snap int
	max  int64

	mu       sync.Mutex
	f        *os.File // nil for NewWriter's
	bw       *bufio.Writer
	ifaces   map[uint64]uint32 // guest id → interface id in this section
	next     uint32
	scratch  [28]byte             // an EPB's fixed head, then a record header
	desc     [DescriptorSize]byte // a packet record's descriptor
	stopped  bool                 // MaxBytes reached, or a write failed
	held     bool                 // Suspend
	closed   bool
	err      error
	st       Stats
	stop     chan struct{}
	flushing sync.WaitGroup
}

// hostIface is the interface of the host's own records (events).
const hostIface = 0

// Create starts a capture in path, truncating it.
func Create(path string, o Options) (*Writer, error) {
	return open(path, os.O_TRUNC, o)
}

// Append continues a capture in path (a servicing's successor does):
// a new section after what the file holds; a missing file is created.
func Append(path string, o Options) (*Writer, error) {
	return open(path, os.O_APPEND, o)
}

func open(path string, mode int, o Options) (*Writer, error) {
	// The options first: a file is truncated only for a capture that
	// can start.
	var size int64
	if mode == os.O_APPEND {
		if fi, err := os.Stat(path); err == nil {
			size = fi.Size()
		}
	}
	if err := o.check(size); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|mode, 0o644)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("capture: %w", err)
	}
	w, err := newWriter(f, fi.Size(), o)
	if err != nil {
		f.Close()
		return nil, err
	}
	w.f = f
	w.flushing.Add(1)
	go w.flushLoop()
	return w, nil
}

// NewWriter writes a capture to out, a section from its start; Close
// flushes it but does not close out.
func NewWriter(out io.Writer, o Options) (*Writer, error) {
	return newWriter(out, 0, o)
}

// check says what is wrong with o for a file of size bytes, if anything:
// a snap length out of range, or a limit that leaves no room for a
// section's start.
func (o Options) check(size int64) error {
	if o.SnapLen < 0 || o.SnapLen > MaxSnapLen {
		return fmt.Errorf("capture: snap length %d (1..%d)", o.SnapLen, MaxSnapLen)
	}
	if head := int64(len(sectionHeader()) + len(interfaceBlock("host", 0))); o.MaxBytes > 0 && size+head > o.MaxBytes {
		return fmt.Errorf("capture: a limit of %d bytes leaves no room for a section (the file has %d)", o.MaxBytes, size)
	}
	return nil
}

func newWriter(out io.Writer, size int64, o Options) (*Writer, error) {
	if err := o.check(size); err != nil {
		return nil, err
	}
	if o.SnapLen == 0 {
		o.SnapLen = DefaultSnapLen
	}
	w := &Writer{
		snap:   o.SnapLen,
		max:    o.MaxBytes,
		bw:     bufio.NewWriterSize(out, 64<<10),
		ifaces: make(map[uint64]uint32),
		stop:   make(chan struct{}),
	}
	w.st.Bytes = size
	w.mu.Lock()
	defer w.mu.Unlock()
	// The host's interface carries whole events: snap length 0, no
	// limit.
	if !w.putLocked(sectionHeader()) || !w.putLocked(interfaceBlock("host", 0)) {
		if w.err != nil {
			return nil, w.err
		}
		return nil, fmt.Errorf("capture: a limit of %d bytes leaves no room for a section (the file has %d)", o.MaxBytes, size)
	}
	w.next = hostIface + 1
	return w, nil
}

// MaxControlLen is the most of a control message a record keeps: any
// message a transport frame can carry, so every one is whole whatever the
// snap length.
const MaxControlLen = 4096

// ifaceSnap is a guest interface's snap length: the snap length of its
// ring packets, or a whole control message if that is more.
func (w *Writer) ifaceSnap() uint32 { return uint32(RecordHeaderSize + max(w.snap, MaxControlLen)) }

// putLocked writes a whole block, or nothing if it would pass MaxBytes.
func (w *Writer) putLocked(b []byte) bool {
	if !w.roomLocked(len(b)) {
		return false
	}
	_, err := w.bw.Write(b)
	return w.wroteLocked(len(b), err)
}

func (w *Writer) roomLocked(n int) bool {
	if w.stopped || w.held || w.closed {
		return false
	}
	if w.max > 0 && w.st.Bytes+int64(n) > w.max {
		w.stopped = true
		return false
	}
	return true
}

func (w *Writer) wroteLocked(n int, err error) bool {
	if err != nil {
		w.stopped = true
		w.err = fmt.Errorf("capture: %w", err)
		return false
	}
	w.st.Bytes += int64(n)
	return true
}

// ifaceLocked is the interface of guest, described on first use.
func (w *Writer) ifaceLocked(guest uint64) (uint32, bool) {
	if id, ok := w.ifaces[guest]; ok {
		return id, true
	}
	if !w.putLocked(interfaceBlock("guest "+strconv.FormatUint(guest, 10), w.ifaceSnap())) {
		return 0, false
	}
	id := w.next
	w.next++
	w.ifaces[guest] = id
	return id, true
}

// zeros pads blocks. Writes take their bytes from the Writer or
// from here: a bufio.Writer may hand a slice to the file as it is, so a
// buffer on the caller's stack would move to the heap, once per record.
var zeros [4]byte

// pkt, if set, is a packet's descriptor fields: emit frames the
// descriptor in w.desc, under the lock, before the bytes.
type pkt struct {
	typ, flags uint16
	txid       uint64
}

// emit writes one record whose bytes are p's descriptor, if p is set,
// then p0..p2 one after the other.
func (w *Writer) emit(h RecordHeader, host bool, p *pkt, p0, p1, p2 []byte) {
	now := time.Now().UnixNano()
	total := len(p0) + len(p1) + len(p2)
	if p != nil {
		total += DescriptorSize
	}
	keep := total
	if !host && h.Kind != KindControl {
		// Events are few and short: kept whole, so that each stays the
		// JSON object it is. Control messages are kept whole too, as
		// the format promises (at most MaxControlLen: a transport
		// frame).
		keep = min(total, w.snap)
	} else if h.Kind == KindControl {
		keep = min(total, MaxControlLen)
	}
	h.Version = RecordVersion
	h.OrigLen = uint32(min(total, int(^uint32(0))))
	if keep < total {
		h.Flags |= FlagTruncated
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	iface := uint32(hostIface)
	if !host {
		var ok bool
		if iface, ok = w.ifaceLocked(h.Guest); !ok {
			w.st.Dropped++
			return
		}
	}
	data := RecordHeaderSize + keep
	n := epbFixed + pad4(data)
	if !w.roomLocked(n) {
		w.st.Dropped++
		return
	}
	b := w.scratch[:]
	le.PutUint32(b[0:], blockEPB)
	le.PutUint32(b[4:], uint32(n))
	le.PutUint32(b[8:], iface)
	le.PutUint32(b[12:], uint32(uint64(now)>>32))
	le.PutUint32(b[16:], uint32(now))
	le.PutUint32(b[20:], uint32(data))
	le.PutUint32(b[24:], uint32(RecordHeaderSize+total))
	w.bw.Write(b[:28]) //nolint:errcheck // sticky in bw, seen below
	h.put(b[:RecordHeaderSize])
	w.bw.Write(b[:RecordHeaderSize]) //nolint:errcheck // as above
	left := keep
	if p != nil {
		putDescriptor(w.desc[:], p.typ, p.flags, p.txid, len(p0), len(p1)+len(p2))
		left -= w.put(w.desc[:], left)
	}
	left -= w.put(p0, left)
	left -= w.put(p1, left)
	w.put(p2, left)
	w.bw.Write(zeros[:pad4(data)-data]) //nolint:errcheck // as above
	le.PutUint32(b[0:], uint32(n))
	_, err := w.bw.Write(b[:4])
	if w.wroteLocked(n, err) {
		w.st.Records++
	}
}

// put writes at most left bytes of b and returns how many. Errors stay
// in the bufio.Writer, sticky, for emit's last write.
func (w *Writer) put(b []byte, left int) int {
	b = b[:min(len(b), left)]
	w.bw.Write(b) //nolint:errcheck // see above
	return len(b)
}

// Control records a control message, whole, to or from guest.
func (w *Writer) Control(guest uint64, dir Dir, msg []byte) {
	w.emit(RecordHeader{Kind: KindControl, Dir: dir, Guest: guest}, false, nil, msg, nil, nil)
}

// Packet records a ring packet of channel ch: its descriptor is built
// from typ, flags and txid as a ring writer frames it, followed by hdr
// (the type header after the descriptor, ranges included) and the
// payload, a then b.
func (w *Writer) Packet(guest uint64, ch uint32, dir Dir, typ, flags uint16, txid uint64, hdr, a, b []byte) {
	w.emit(RecordHeader{Kind: KindPacket, Dir: dir, Channel: ch, Guest: guest}, false, &pkt{typ, flags, txid}, hdr, a, b)
}

// Signal records a signal on channel ch: Out, the host signalled the
// guest; In, the host's receive loop was woken.
func (w *Writer) Signal(guest uint64, ch uint32, dir Dir) {
	w.emit(RecordHeader{Kind: KindSignal, Dir: dir, Channel: ch, Guest: guest}, false, nil, nil, nil, nil)
}

// Event records a host event (a servicing's) as the JSON object of v,
// on the host's interface.
func (w *Writer) Event(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(strconv.Quote(err.Error()))
	}
	w.emit(RecordHeader{Kind: KindEvent, Dir: Out}, true, nil, b, nil, nil)
}

// Suspend flushes the file and holds every record after it back
// (counted as dropped) until Resume: a servicing's predecessor suspends
// its capture before the successor appends to the file, so that no
// block of the two interleaves.
func (w *Writer) Suspend() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.held = true
	return w.flushLocked()
}

// Resume ends a Suspend: a servicing that failed goes on capturing.
func (w *Writer) Resume() {
	w.mu.Lock()
	w.held = false
	w.mu.Unlock()
}

// Flush writes the buffered records to the file.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

func (w *Writer) flushLocked() error {
	if w.err != nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.stopped = true
		w.err = fmt.Errorf("capture: %w", err)
	}
	return w.err
}

func (w *Writer) flushLoop() {
	defer w.flushing.Done()
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.Flush() //nolint:errcheck // sticky: Close reports it
		}
	}
}

// Stats returns the Writer's counts so far.
func (w *Writer) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.st
}

// Close flushes and closes the capture; records after it are dropped.
// It is idempotent and returns the first error the Writer met.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return w.err
	}
	err := w.flushLocked()
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	w.flushing.Wait()
	if w.f != nil {
		if cerr := w.f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("capture: %w", cerr)
		}
	}
	if err != nil && !errors.Is(err, w.err) {
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
	}
	return err
}
