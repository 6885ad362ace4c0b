package ringbench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/ring"
)

// roundTripWindow is how many packets the client keeps in flight: as many
// as one ring holds, so neither side ever waits for ring space (the echo
// device's streams use the same window).
func roundTripWindow(c Config) int {
	return max(ring.PacketsFit(c.RingSize, c.Payload), 1)
}

// runRoundTrip is Run with Config.RoundTrip: an echo stream (`vmbus guest
// stream`) on bare rings, with the stream's own packets and checks but
// no channel layer. The client goroutine writes packets built by
// echo.Packer into ring "out", keeps up to roundTripWindow of them in
// flight, and reads the answers from ring "back", checking each in place
// with echo.Checker; the echo goroutine reads ring "out" and writes every
// payload, read in place, into ring "back".
// With Signal each side has one event, as a channel has one per
// direction: the client's for "answers arrived or out has space", the
// echo's for "packets arrived or back has space".
func runRoundTrip(c Config) (Result, error) {
	outW, outR, err := formatRing(make([]byte, ring.ControlSize+c.RingSize))
	if err != nil {
		return Result{}, err
	}
	backW, backR, err := formatRing(make([]byte, ring.ControlSize+c.RingSize))
	if err != nil {
		return Result{}, err
	}
	var toClient, toEcho *notifier
	if c.Signal {
		if toClient, err = newNotifier(); err != nil {
			return Result{}, err
		}
		defer toClient.Close()
		if toEcho, err = newNotifier(); err != nil {
			return Result{}, err
		}
		defer toEcho.Close()
	}
	var echoSignals int64
	eerr := make(chan error, 1)
	start := time.Now()
	go func() {
		eerr <- echoSide(c, outR, backW, toClient, toEcho, &echoSignals)
	}()
	sum, signals, cerr := clientSide(c, outW, backR, toClient, toEcho)
	elapsed := time.Since(start)
	if cerr != nil {
		// Let the echo goroutine out of its wait before returning.
		if toEcho != nil {
			toEcho.Signal()
		}
		return Result{}, cerr
	}
	if e := <-eerr; e != nil {
		return Result{}, e
	}
	return result(c, elapsed, sum, signals+echoSignals), nil
}

// clientSide sends c.Count packets and reads their answers, checking that
// each comes back once and in order.
func clientSide(c Config, w *ring.Writer, r *ring.Reader, toClient, toEcho *notifier) (sum uint64, signals int64, err error) {
	k := echo.NewPacker(c.Payload)
	chk := echo.NewChecker(uint64(c.Count), c.Payload)
	var dst []byte // a wrapped answer, copied to be checked
	window := roundTripWindow(c)
	sent, back, spins := 0, 0, 0
	signal := func(n *notifier) {
		if n != nil {
			n.Signal()
			signals++
		}
	}
	if toClient != nil {
		r.DisableInterrupts()
	}
	for back < c.Count {
		progress := false
		for sent < c.Count && sent-back < window {
			if err := w.WriteInBand(uint64(sent), 0, k.Packet(uint64(sent))); err != nil {
				if errors.Is(err, ring.ErrFull) {
					break
				}
				return 0, 0, err
			}
			sent++
			progress = true
		}
		if w.Commit() {
			signal(toEcho)
		}
		var p ring.Packet
		for {
			err := r.Next(&p)
			if errors.Is(err, ring.ErrEmpty) {
				break
			}
			if err != nil {
				return 0, 0, err
			}
			if p.TransactionID != uint64(back) {
				return 0, 0, fmt.Errorf("answer %d carries transaction %d", back, p.TransactionID)
			}
			a, b := p.Segments()
			if len(b) > 0 {
				dst = p.AppendPayload(dst[:0])
				a = dst
			}
			if v := chk.Check(a); v != echo.VerdictOK {
				return 0, 0, fmt.Errorf("answer %d: verdict %d", back, v)
			}
			sum += binary.LittleEndian.Uint64(a)
			back++
			progress = true
		}
		if r.Commit() {
			signal(toEcho)
		}
		if progress {
			spins = 0
			continue
		}
		if toClient == nil {
			spins++
			backoff(spins)
			continue
		}
		more, err := r.EnableInterrupts()
		if err != nil {
			return 0, 0, err
		}
		if !more {
			if err := toClient.Wait(); err != nil {
				return 0, 0, err
			}
		}
		r.DisableInterrupts()
	}
	return sum, signals, nil
}

// echoSide answers c.Count packets, each with its own payload, in batches:
// one commit of each ring and at most one signal per batch.
func echoSide(c Config, r *ring.Reader, w *ring.Writer, toClient, toEcho *notifier, signals *int64) error {
	spins := 0
	if toEcho != nil {
		r.DisableInterrupts()
	}
	for got := 0; got < c.Count; {
		n := 0
		var p ring.Packet
		for {
			err := r.Next(&p)
			if errors.Is(err, ring.ErrEmpty) {
				break
			}
			if err != nil {
				return err
			}
			a, b := p.Segments()
			for {
				err = w.WriteInBand(p.TransactionID, 0, a, b)
				if !errors.Is(err, ring.ErrFull) {
					break
				}
				// The client's window keeps this from happening; wait
				// for space properly if it does.
				if w.Commit() && toClient != nil {
					toClient.Signal()
					*signals++
				}
				if toEcho == nil {
					spins++
					backoff(spins)
					continue
				}
				ready, werr := w.WaitFor(c.Payload, 0)
				if werr != nil {
					return werr
				}
				if !ready {
					if werr := toEcho.Wait(); werr != nil {
						return werr
					}
				}
			}
			if err != nil {
				return err
			}
			n++
		}
		got += n
		sig := r.Commit()
		if w.Commit() {
			sig = true
		}
		if sig && toClient != nil {
			toClient.Signal()
			*signals++
		}
		if n > 0 {
			spins = 0
			continue
		}
		if toEcho == nil {
			spins++
			backoff(spins)
			continue
		}
		more, err := r.EnableInterrupts()
		if err != nil {
			return err
		}
		if !more {
			if err := toEcho.Wait(); err != nil {
				return err
			}
		}
		r.DisableInterrupts()
	}
	return nil
}
