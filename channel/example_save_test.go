package channel_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/savedstate"
	"github.com/govmbus/govmbus/transport"
)

// Save a paused server channel in small chunks, then restore the chunks.
// The server sent a packet that waits for a completion the guest still
// holds, so the state carries an outstanding transaction.
func ExampleChannel_SaveContinue() {
	g, cl, closeBus := startBus()
	defer closeBus()
	server := newPingServer(g, 0)
	check(server.Enable())
	check(server.Start())
	held := make(chan *channel.Packet, 1)
	client := channel.NewClient()
	check(client.SetClient(cl))
	check(client.SetInterface(pingType, pingInst))
	check(client.SetProcessPacketCallbacks(func(_ *channel.Channel, p *channel.Packet, _ []byte, _ channel.PacketFlags) {
		held <- p // not completed yet
	}, nil))
	check(client.Enable())
	for server.State() != channel.StateActive {
		time.Sleep(time.Millisecond)
	}
	done := make(chan channel.Status, 1)
	p, err := server.AllocatePacket()
	check(err)
	p.SetCompletion(func(_ *channel.OutPacket, st channel.Status, _ []byte) { done <- st })
	check(p.Send([]byte("request!"), channel.SendWaitForCompletion))
	inGuest := <-held

	// Save: Pause first (a running channel refuses SaveBegin), then ask
	// for the state one record at a time.
	check(server.Pause())
	check(server.SaveBegin())
	var chunks [][]byte
	size := 16
	for {
		buf := make([]byte, size)
		filled, required, err := server.SaveContinue(buf)
		fmt.Printf("SaveContinue(%d bytes): %v, filled %d, required %d\n", size, channel.StatusOf(err), filled, required)
		if errors.Is(err, channel.StatusBufferTooSmall) {
			size = required // nothing written: retry with the size asked for
			continue
		}
		chunks = append(chunks, buf[:filled]) // whole records
		if err == nil {
			break
		}
	}
	server.SaveEnd()
	var oneShot bytes.Buffer
	check(server.Save(&oneShot))
	// Every save has its own random save id, so compare the records.
	fmt.Println("same records as Save:", sameRecords(bytes.Join(chunks, nil), oneShot.Bytes()))

	// Restore into a fresh channel, configured like the first and disabled.
	// In servicing it would belong to the host host.Restore brought back,
	// and Enable would re-attach it; this guest has no restored bus state,
	// so the channel takes ServerForceNewChannel and is only cleaned up.
	fresh := newPingServer(g, channel.ServerForceNewChannel)
	// The VSP brings each saved packet back and names who hears of its
	// completion (a state with packets needs this callback).
	check(fresh.SetSavePacketCallbacks(nil, func(c *channel.Channel, lib, _ []byte) error {
		p, err := c.AllocatePacket()
		if err != nil {
			return err
		}
		if err := p.Restore(lib); err != nil {
			p.Free()
			return err
		}
		p.SetCompletion(func(*channel.OutPacket, channel.Status, []byte) {})
		return nil
	}))
	for _, chunk := range chunks {
		fmt.Println("RestoreFromBuffer:", channel.StatusOf(fresh.RestoreFromBuffer(chunk)))
	}
	check(fresh.Cleanup())

	// The paused original resumes and gets its completion.
	inGuest.Complete(nil)
	check(server.Start())
	fmt.Println("completion:", <-done)
	check(client.Cleanup())
	check(server.Cleanup())
	// Output:
	// SaveContinue(16 bytes): STATUS_BUFFER_TOO_SMALL (0xc0000023), filled 0, required 80
	// SaveContinue(80 bytes): STATUS_BUFFER_OVERFLOW (0x80000005), filled 80, required 208
	// SaveContinue(80 bytes): STATUS_BUFFER_TOO_SMALL (0xc0000023), filled 0, required 208
	// SaveContinue(208 bytes): STATUS_BUFFER_OVERFLOW (0x80000005), filled 208, required 40
	// SaveContinue(208 bytes): STATUS_SUCCESS (0x00000000), filled 152, required 0
	// record: channel-info
	// record: channel-mappings
	// record: channel-packet
	// same records as Save: true
	// RestoreFromBuffer: STATUS_MORE_PROCESSING_REQUIRED (0xc0000016)
	// RestoreFromBuffer: STATUS_MORE_PROCESSING_REQUIRED (0xc0000016)
	// RestoreFromBuffer: STATUS_SUCCESS (0x00000000)
	// completion: STATUS_SUCCESS (0x00000000)
}

// sameRecords reports whether two saved states hold the same records,
// and prints their kinds.
func sameRecords(a, b []byte) bool {
	_, ra, err := savedstate.Parse(a, savedstate.Limits{})
	check(err)
	_, rb, err := savedstate.Parse(b, savedstate.Limits{})
	check(err)
	for _, r := range ra {
		fmt.Println("record:", savedstate.KindName(r.Kind))
	}
	return reflect.DeepEqual(ra, rb)
}

// newPingServer configures a disabled server channel of guest g.
func newPingServer(g *host.Guest, flags channel.ServerFlags) *channel.Channel {
	s := channel.NewServer()
	check(s.SetGuest(g))
	check(s.SetInterface(pingType, pingInst))
	check(s.SetServerFlags(flags))
	check(s.SetProcessPacketCallbacks(func(_ *channel.Channel, p *channel.Packet, _ []byte, _ channel.PacketFlags) {
		p.Complete(nil)
	}, nil))
	return s
}

// startBus runs a host and a connected guest over transport.Pipe, and
// returns the host's view of the guest, the guest's client and a function
// that closes both.
func startBus() (*host.Guest, *guest.Client, func()) {
	guests := make(chan *host.Guest, 1)
	h := host.New(host.Config{OnGuest: func(g *host.Guest) { guests <- g }})
	hostEnd, guestEnd, err := transport.Pipe()
	check(err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.ServeConn(hostEnd)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := guest.New(ctx, guestEnd, guest.Config{MemorySize: 8 << 20})
	check(err)
	return <-guests, cl, func() {
		cl.Close()
		h.Close()
		wg.Wait()
	}
}
