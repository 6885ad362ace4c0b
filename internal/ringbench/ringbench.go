package ringbench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/ring"
)

// Config says what to run.
type Config struct {
	Payload  int  // payload bytes per packet
	Count    int  // packets to send
	RingSize int  // data bytes of the ring, a multiple of 4096
	Batch    int  // packets per writer commit; 0 commits every RingSize/16 bytes
	Signal   bool // sleep on eventfds with the interrupt-mask and pending-send protocols instead of busy-polling
	ZeroCopy bool // read payloads in place (touching every byte) instead of copying them out
	// RoundTrip sends every packet back through a second ring, as an
	// echo device does (see runRoundTrip); Batch and ZeroCopy do not
	// apply.
	RoundTrip bool
	// EchoCommand, with RoundTrip, runs the echo side in a process of
	// its own, started with this command line (its program must call
	// RunEchoProcess), so that the rings cross two processes as a
	// channel's do.
	EchoCommand []string
}

// Result is what a run measured.
type Result struct {
	Packets       int     `json:"packets"`
	Payload       int     `json:"payload"`
	Seconds       float64 `json:"seconds"`
	PacketsPerSec float64 `json:"packets_per_sec"`
	BytesPerSec   float64 `json:"bytes_per_sec"`
	Signals       int64   `json:"signals"`
	// Checksum is the sum of the sequence numbers the reader found in the
	// first eight payload bytes: ExpectedChecksum says what it must be.
	Checksum uint64 `json:"checksum"`
	// Touched folds every payload byte a zero-copy reader read in place,
	// so that work cannot be optimised away.
	Touched uint64 `json:"-"`
}

// WriteText prints r, a run of c, as `vmbus bench ring` does.
func (r Result) WriteText(w io.Writer, c Config) {
	mode := "busy-poll"
	if c.Signal {
		mode = "eventfd signals"
	}
	read := "copy reads"
	switch {
	case c.RoundTrip && len(c.EchoCommand) > 0:
		read = "round trips (two rings), the echo side in a second process"
	case c.RoundTrip:
		read = "round trips (two rings)"
	case c.ZeroCopy:
		read = "zero-copy reads"
	}
	fmt.Fprintf(w, "ring bench: %d packets of %d bytes, %d-byte ring, %s, %s\n", r.Packets, r.Payload, c.RingSize, mode, read)
	fmt.Fprintf(w, "  seconds      %.3f\n", r.Seconds)
	fmt.Fprintf(w, "  packets/s    %.2f M\n", r.PacketsPerSec/1e6)
	fmt.Fprintf(w, "  bytes/s      %.2f GB/s\n", r.BytesPerSec/1e9)
	fmt.Fprintf(w, "  signals      %d\n", r.Signals)
}

// maxRingSize bounds a benchmark's ring: 1 GiB of data, each ring
// allocated in full.
const maxRingSize = 1 << 30

// Validate reports a configuration that cannot run.
func (c Config) Validate() error {
	switch {
	case c.Payload < 0:
		return fmt.Errorf("payload %d is negative", c.Payload)
	case c.Count <= 0:
		return fmt.Errorf("count %d must be positive", c.Count)
	case c.RingSize < 4096 || c.RingSize%4096 != 0 || c.RingSize > maxRingSize:
		return fmt.Errorf("ring size %d must be a positive multiple of 4096 up to %d", c.RingSize, maxRingSize)
	case c.Batch < 0:
		return fmt.Errorf("batch %d is negative", c.Batch)
	case ring.PacketLen(0, c.Payload) > c.RingSize-8:
		return fmt.Errorf("a %d-byte payload does not fit in a %d-byte ring", c.Payload, c.RingSize)
	case c.RoundTrip && (c.Batch != 0 || c.ZeroCopy):
		return fmt.Errorf("batch and zero-copy do not apply to a round trip")
	case len(c.EchoCommand) > 0 && !(c.RoundTrip && c.Signal):
		return fmt.Errorf("an echo process needs a round trip with signals")
	case c.RoundTrip && c.Payload < echo.HeaderSize:
		return fmt.Errorf("a round trip carries stream packets of at least %d bytes", echo.HeaderSize)
	}
	return nil
}

// Run executes c and returns what it measured. Packet i carries i in its
// first eight payload bytes (when it has eight), so the reader can check
// that every packet arrived once and in order.
func Run(c Config) (Result, error) {
	if err := c.Validate(); err != nil {
		return Result{}, err
	}
	if len(c.EchoCommand) > 0 {
		return runRoundTripProcesses(c)
	}
	if c.RoundTrip {
		return runRoundTrip(c)
	}
	w, r, err := formatRing(make([]byte, ring.ControlSize+c.RingSize))
	if err != nil {
		return Result{}, err
	}
	var toReader, toWriter *notifier
	if c.Signal {
		if toReader, err = newNotifier(); err != nil {
			return Result{}, err
		}
		defer toReader.Close()
		if toWriter, err = newNotifier(); err != nil {
			return Result{}, err
		}
		defer toWriter.Close()
	}

	payload := isolated(c.Payload)
	werr := make(chan error, 1)
	var signals int64
	start := time.Now()
	go func() {
		werr <- write(c, w, payload, toReader, toWriter, &signals)
	}()
	sum, touched, readerSignals, rerr := read(c, r, toReader, toWriter)
	elapsed := time.Since(start)
	if e := <-werr; e != nil {
		return Result{}, e
	}
	if rerr != nil {
		return Result{}, rerr
	}
	res := result(c, elapsed, sum, signals+readerSignals)
	res.Touched = touched
	return res, nil
}

// result is a run's Result from what it measured.
func result(c Config, elapsed time.Duration, sum uint64, signals int64) Result {
	secs := elapsed.Seconds()
	return Result{
		Packets:       c.Count,
		Payload:       c.Payload,
		Seconds:       secs,
		PacketsPerSec: float64(c.Count) / secs,
		BytesPerSec:   float64(c.Count) * float64(c.Payload) / secs,
		Signals:       signals,
		Checksum:      sum,
	}
}

// formatRing formats region as an empty ring (pending-send feature on)
// and returns its writer and reader.
func formatRing(region []byte) (*ring.Writer, *ring.Reader, error) {
	if err := ring.Format(region, true); err != nil {
		return nil, nil, err
	}
	w, err := ring.NewWriter(region)
	if err != nil {
		return nil, nil, err
	}
	r, err := ring.NewReader(region)
	return w, r, err
}

// ExpectedChecksum is the checksum a correct run of c reports.
func ExpectedChecksum(c Config) uint64 {
	if c.Payload < 8 {
		return 0
	}
	n := uint64(c.Count)
	return n * (n - 1) / 2
}

func write(c Config, w *ring.Writer, payload []byte, toReader, toWriter *notifier, signals *int64) error {
	pending, spins := 0, 0
	commit := func() {
		if w.Commit() && toReader != nil {
			toReader.Signal()
			*signals++
		}
		pending = 0
	}
	for i := 0; i < c.Count; i++ {
		if c.Payload >= 8 {
			binary.LittleEndian.PutUint64(payload, uint64(i))
		}
		for {
			err := w.WriteInBand(uint64(i), 0, payload)
			if err == nil {
				break
			}
			if err != ring.ErrFull && !errors.Is(err, ring.ErrFull) {
				return err
			}
			commit()
			if toWriter == nil {
				spins++
				backoff(spins)
				continue
			}
			ready, err := w.WaitFor(c.Payload, 0)
			if err != nil {
				return err
			}
			if !ready {
				if err := toWriter.Wait(); err != nil {
					return err
				}
			}
		}
		pending++
		if c.Batch > 0 {
			if pending >= c.Batch {
				commit()
			}
		} else if w.Buffered() >= c.RingSize/16 {
			commit()
		}
	}
	commit()
	return nil
}

func read(c Config, r *ring.Reader, toReader, toWriter *notifier) (sum, touched uint64, signals int64, err error) {
	dst := isolated(c.Payload)
	var consumed uint32
	spins := 0
	if toReader != nil {
		r.DisableInterrupts()
	}
	var p ring.Packet // Next overwrites it: one for the whole run
	for got := 0; got < c.Count; {
		err := r.Next(&p)
		if err == nil {
			if c.ZeroCopy {
				a, b := p.Segments()
				touched += sumBytes(a) + sumBytes(b)
				if c.Payload >= 8 {
					var seq [8]byte
					n := copy(seq[:], a)
					copy(seq[n:], b)
					sum += binary.LittleEndian.Uint64(seq[:])
				}
			} else if p.CopyPayload(dst) >= 8 {
				sum += binary.LittleEndian.Uint64(dst)
			}
			got++
			// Hand space back in slices of the ring, not only when it
			// runs dry: a writer that fills the ring would otherwise
			// wait for the whole of it.
			if consumed += p.Len; consumed >= uint32(c.RingSize/16) {
				consumed = 0
				if r.Commit() && toWriter != nil {
					toWriter.Signal()
					signals++
				}
			}
			continue
		}
		if err != ring.ErrEmpty && !errors.Is(err, ring.ErrEmpty) {
			return 0, 0, 0, err
		}
		if r.Commit() && toWriter != nil {
			toWriter.Signal()
			signals++
		}
		if toReader == nil {
			spins++
			backoff(spins)
			continue
		}
		more, err := r.EnableInterrupts()
		if err != nil {
			return 0, 0, 0, err
		}
		if !more {
			if err := toReader.Wait(); err != nil {
				return 0, 0, 0, err
			}
		}
		r.DisableInterrupts()
	}
	if r.Commit() && toWriter != nil {
		toWriter.Signal()
		signals++
	}
	return sum, touched, signals, nil
}

// backoff is the busy-poll wait: keep re-checking the peer's index, and
// give the scheduler a turn only now and then, since entering it costs more
// than the packets it would let through.
func backoff(spins int) {
	if spins%128 == 0 {
		runtime.Gosched()
	}
}

// sumBytes folds every byte of b, 32 bytes per step into four independent
// sums so the loads are not serialised behind one add chain.
func sumBytes(b []byte) uint64 {
	var s0, s1, s2, s3 uint64
	for len(b) >= 32 {
		s0 += binary.LittleEndian.Uint64(b[0:])
		s1 += binary.LittleEndian.Uint64(b[8:])
		s2 += binary.LittleEndian.Uint64(b[16:])
		s3 += binary.LittleEndian.Uint64(b[24:])
		b = b[32:]
	}
	for len(b) >= 8 {
		s0 += binary.LittleEndian.Uint64(b)
		b = b[8:]
	}
	for _, x := range b {
		s1 += uint64(x)
	}
	return s0 + s1 + s2 + s3
}

// isolated returns n bytes with at least 256 bytes of their own
// allocation on either side, so that they share no cache line, nor the
// pair of lines a core's prefetcher fetches together, with anything else:
// the writer's payload and the reader's buffer are each written on every
// packet by one core, and side by side on the heap each write would take
// the line from the other.
func isolated(n int) []byte {
	const pad = 256
	return make([]byte, n+2*pad)[pad : pad+n : pad+n]
}
