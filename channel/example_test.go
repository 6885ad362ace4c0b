package channel_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/transport"
)

// The interface the examples' VSP offers and their VSC looks for.
var (
	pingType = protocol.MustParseGUID("6b1d2f40-0000-4000-8000-000000000001")
	pingInst = protocol.MustParseGUID("6b1d2f40-0000-4000-8000-0000000000aa")
)

// check stops an example at its first error.
func check(err error) {
	if err != nil {
		panic(err)
	}
}

// A host and a guest in one process, joined by transport.Pipe. The host
// offers each guest that connects a server channel (VSP) that answers
// every packet with a completion; the guest opens it with a client channel
// (VSC) and sends one synchronous request.
func Example_serverAndClient() {
	// Host side: one server channel per guest, made in OnGuest.
	servers := make(chan *channel.Channel, 1)
	h := host.New(host.Config{OnGuest: func(g *host.Guest) {
		s := channel.NewServer()
		check(s.SetGuest(g))
		check(s.SetInterface(pingType, pingInst))
		check(s.SetProcessPacketCallbacks(func(_ *channel.Channel, p *channel.Packet, payload []byte, _ channel.PacketFlags) {
			p.Complete(bytes.ToUpper(payload)) // goes back because the sender waits for it
		}, nil))
		check(s.Enable()) // offer it to g
		check(s.Start())  // a server starts explicitly
		servers <- s
	}})
	hostEnd, guestEnd, err := transport.Pipe()
	check(err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.ServeConn(hostEnd)
	}()

	// Guest side: connect with 8 MiB of guest memory, then open the channel.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := guest.New(ctx, guestEnd, guest.Config{MemorySize: 8 << 20})
	check(err)
	server := <-servers

	c := channel.NewClient()
	check(c.SetClient(cl))
	check(c.SetInterface(pingType, pingInst))
	check(c.SetProcessPacketCallbacks(func(_ *channel.Channel, p *channel.Packet, _ []byte, _ channel.PacketFlags) {
		p.Complete(nil) // the server sends nothing here; complete whatever comes
	}, nil))
	ready := make(chan struct{})
	check(c.SetStateCallbacks(channel.StateCallbacks{
		PostStarted: func(*channel.Channel) { close(ready) }, // open, and packets flow
	}))
	check(c.Enable()) // waits for the offer and opens in the background
	<-ready

	resp := make([]byte, 64)
	// Payloads travel in multiples of 8 bytes: this one is 16.
	n, err := c.SendSynchronousRequest([]byte("ping to the host"), nil, 0, resp, channel.NoTimeout)
	check(err)
	fmt.Printf("reply: %q\n", resp[:n])
	fmt.Println("client:", c.State(), "server:", server.State())

	// Tear down: channels first (Disable waits for their goroutines), then
	// the guest connection and the host.
	check(c.Cleanup())
	check(server.Cleanup())
	check(cl.Close())
	h.Close()
	wg.Wait()
	// Output:
	// reply: "PING TO THE HOST"
	// client: Active server: Active
}
