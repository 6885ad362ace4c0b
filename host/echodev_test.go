package host_test

// A raw echo VSP on host.Device, for the control-plane tests: it answers
// each in-band packet on the rings directly, without the channel layer
// (which sits above this package).

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/ring"
)

// echoType identifies the test echo channels.
var echoType = protocol.MustParseGUID("5e1b7c3a-9d42-4f6e-8a15-2c07e9b4d831")

// echoInstance is the instance New offers by default.
var echoInstance = protocol.MustParseGUID("00000000-0000-0000-0000-000000000001")

// echoDevice is the echo VSP. It is safe for concurrent use by several guests.
type echoDevice struct {
	spec host.OfferSpec
	log  *slog.Logger

	mu    sync.Mutex
	chans map[*host.Channel]*worker
}

// newEchoDevice returns an echo device offering InterfaceType/InterfaceInstance.
// A nil logger discards.
func newEchoDevice(log *slog.Logger) *echoDevice {
	return newEchoInstance(echoInstance, log)
}

// newEchoInstance returns an echo device with another instance GUID, for hosts
// that offer several.
func newEchoInstance(instance protocol.GUID, log *slog.Logger) *echoDevice {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &echoDevice{
		spec:  host.OfferSpec{InterfaceType: echoType, InterfaceInstance: instance, Flags: protocol.OfferFlagGPADLs},
		log:   log,
		chans: make(map[*host.Channel]*worker),
	}
}

// Offer implements host.Device.
func (d *echoDevice) Offer() host.OfferSpec { return d.spec }

// worker echoes one channel.
type worker struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Open implements host.Device: it opens both ring endpoints and starts the
// channel's goroutine.
func (d *echoDevice) Open(ch *host.Channel) error {
	r, err := ring.NewReader(ch.In)
	if err != nil {
		return err
	}
	w, err := ring.NewWriter(ch.Out)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	wk := &worker{cancel: cancel, done: make(chan struct{})}
	d.mu.Lock()
	d.chans[ch] = wk
	d.mu.Unlock()
	go func() {
		defer close(wk.done)
		if err := echoLoop(ctx, ch, r, w); !errors.Is(err, context.Canceled) {
			d.log.Warn("echo channel stopped", "guest", ch.GuestID, "channel", ch.ChannelID, "err", err)
		}
	}()
	return nil
}

// Close implements host.Device: it stops the channel's goroutine and waits
// for it.
func (d *echoDevice) Close(ch *host.Channel) {
	d.mu.Lock()
	wk := d.chans[ch]
	delete(d.chans, ch)
	d.mu.Unlock()
	if wk != nil {
		wk.cancel()
		<-wk.done
	}
}

// echoLoop answers packets until ctx ends or a ring fails. It drains with
// interrupts masked, unmasks and re-checks before sleeping (a packet that
// arrived in between would otherwise be missed), and commits each answer
// with the ring's signalling rules.
func echoLoop(ctx context.Context, ch *host.Channel, r *ring.Reader, w *ring.Writer) error {
	var p ring.Packet
	buf := make([]byte, 0, r.Size())
	for {
		r.DisableInterrupts()
		err := r.Next(&p)
		if errors.Is(err, ring.ErrEmpty) {
			more, err := r.EnableInterrupts()
			if err != nil {
				return err
			}
			if more {
				continue
			}
			if err := ch.FromGuest.Wait(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		typ, flags, txid := p.Type, p.Flags, p.TransactionID
		buf = p.AppendPayload(buf[:0])
		// The payload is copied, so the space goes back to the guest now.
		if r.Commit() {
			ch.ToGuest.Signal() //nolint:errcheck // the guest may be gone; the control plane notices
		}
		if typ != ring.TypeInBand {
			continue
		}
		if err := send(ctx, ch, w, flags&ring.FlagCompletionRequested != 0, txid, buf); err != nil {
			return err
		}
	}
}

// send writes one answer, sleeping on the guest's event while the ring is
// full.
func send(ctx context.Context, ch *host.Channel, w *ring.Writer, completion bool, txid uint64, payload []byte) error {
	for {
		var err error
		if completion {
			err = w.WriteCompletion(txid, payload)
		} else {
			err = w.WriteInBand(txid, 0, payload)
		}
		if err == nil {
			if w.Commit() {
				ch.ToGuest.Signal() //nolint:errcheck // see above
			}
			return nil
		}
		if !errors.Is(err, ring.ErrFull) {
			return err
		}
		ready, err := w.WaitFor(len(payload), 0)
		if err != nil {
			return err
		}
		if ready {
			continue
		}
		if err := ch.FromGuest.Wait(ctx); err != nil {
			return err
		}
	}
}
