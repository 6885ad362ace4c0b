package hosting_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/protocol"
)

// The interface of the example's device.
var (
	upperType     = protocol.MustParseGUID("0f9c6a52-5b1e-4d3a-9e0c-7a44d1e2b001")
	upperInstance = protocol.MustParseGUID("0f9c6a52-5b1e-4d3a-9e0c-7a44d1e2b0aa")
)

// upper is the example's VSP: it answers every packet with its payload
// in upper case. It keeps no state of its own, so its channel's saved
// state is all a successor needs.
type upper struct{ ch *channel.Channel }

// newUpper offers the device to g, or (chunks not nil) restores the one a
// predecessor saved, paused: the daemon starts it.
func newUpper(g *host.Guest, chunks [][]byte) (hosting.Device, error) {
	ch := channel.NewServer()
	err := errors.Join(
		ch.SetGuest(g),
		ch.SetInterface(upperType, upperInstance),
		ch.SetProcessPacketCallbacks(func(_ *channel.Channel, p *channel.Packet, payload []byte, _ channel.PacketFlags) {
			p.Complete(bytes.ToUpper(payload))
		}, nil),
	)
	if err == nil && chunks != nil {
		err = ch.RestoreChunks(chunks)
	}
	if err == nil {
		err = ch.Enable()
	}
	if err == nil && chunks == nil {
		err = ch.Start()
	}
	if err != nil {
		ch.Cleanup() //nolint:errcheck // the first error matters
		return nil, err
	}
	return upper{ch}, nil
}

// The servicing surface (hosting.Device) is the channel's.
func (u upper) Channel() *channel.Channel { return u.ch }
func (u upper) StopIndications()          { u.ch.Servicing().StopIndications() }
func (u upper) Pause() error              { return u.ch.Pause() }
func (u upper) Save() ([][]byte, error)   { return u.ch.SaveChunks(64 << 10) }
func (u upper) Start() error              { return u.ch.Start() }
func (u upper) StartHeld() error          { return u.ch.Servicing().StartHeld() }
func (u upper) Release()                  { u.ch.Servicing().Release() }
func (u upper) Close() error              { return u.ch.Cleanup() }

// upperSpec is the one configured upper device: the same for every guest.
type upperSpec struct{}

func (upperSpec) Offer() host.OfferSpec {
	return host.OfferSpec{InterfaceType: upperType, InterfaceInstance: upperInstance}
}
func (upperSpec) New(g *host.Guest) (hosting.Device, error) { return newUpper(g, nil) }
func (upperSpec) Restore(g *host.Guest, chunks [][]byte) (hosting.Device, error) {
	return newUpper(g, chunks)
}
func (upperSpec) Close() error { return nil }

// A VMM's own device served by a daemon, a guest that uses it, and a
// servicing in between: the daemon hands every channel and the bus to a
// successor daemon in the same process while the guest keeps sending,
// and no request goes unanswered.
func Example() {
	kinds := hosting.NewRegistry()
	kinds.Register(hosting.Kind{Name: "upper", Open: func(string, int, *slog.Logger) (hosting.Spec, error) {
		return upperSpec{}, nil
	}})
	dir, err := os.MkdirTemp("", "hosting-example-")
	check(err)
	defer os.RemoveAll(dir)
	events := make(chan hosting.Event, 16)
	cfg := hosting.Config{
		Socket:  filepath.Join(dir, "bus.sock"),
		Kinds:   kinds,
		Devices: []string{"upper"},
		Events:  func(e hosting.Event) { events <- e },
	}
	d, err := hosting.New(cfg)
	check(err)
	check(d.Serve())
	fmt.Println("event:", (<-events).Msg())

	// The guest: connect, open the device's channel.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := guest.Dial(ctx, cfg.Socket, guest.Config{MemorySize: 8 << 20})
	check(err)
	c := channel.NewClient()
	ready := make(chan struct{})
	check(errors.Join(
		c.SetClient(cl),
		c.SetInterface(upperType, upperInstance),
		c.SetProcessPacketCallbacks(func(_ *channel.Channel, p *channel.Packet, _ []byte, _ channel.PacketFlags) { p.Complete(nil) }, nil),
		c.SetStateCallbacks(channel.StateCallbacks{PostStarted: func(*channel.Channel) { close(ready) }}),
	))
	check(c.Enable())
	<-ready

	// The guest sends requests one after the other; the host is
	// serviced after the tenth answer, while the guest goes on.
	const requests = 100
	answered := make(chan int, requests)
	go func() {
		defer close(answered)
		resp := make([]byte, 64)
		for i := range requests {
			msg := fmt.Sprintf("request %08d", i) // 16 bytes: payloads travel in multiples of 8
			n, err := c.SendSynchronousRequest([]byte(msg), nil, 0, resp, channel.NoTimeout)
			if err != nil || !bytes.Equal(resp[:n], bytes.ToUpper([]byte(msg))) {
				return
			}
			answered <- i
		}
	}()
	n := 0
	for range answered {
		if n++; n == 10 {
			break
		}
	}
	next, err := hosting.New(cfg) // the successor: same socket, same devices
	check(err)
	check(d.ServiceTo(next))
	for range len(events) {
		ev := <-events
		if done, ok := ev.(*hosting.ServicingComplete); ok {
			fmt.Printf("event: %s: servicing %d, %d guest, %d channel restored\n", ev.Msg(), done.Servicing, done.Guests, done.Channels)
		} else {
			fmt.Println("event:", ev.Msg())
		}
	}
	for range answered {
		n++
	}
	fmt.Printf("%d of %d requests answered in upper case\n", n, requests)

	check(c.Cleanup())
	check(cl.Close())
	check(next.Shutdown(ctx))
	// Output:
	// event: host listening
	// event: servicing started
	// event: servicing complete: servicing 1, 1 guest, 1 channel restored
	// 100 of 100 requests answered in upper case
}

// check stops the example at its first error.
func check(err error) {
	if err != nil {
		panic(err)
	}
}
