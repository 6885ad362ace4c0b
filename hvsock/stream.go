package hvsock

import (
	"errors"
	"time"

	"github.com/govmbus/govmbus/channel"
)

// stream is a connection's data path: the byte-mode pipe over its
// channel, FIN being a zero-length data packet (DEVICES.md §1.2, §2.6).
// It is attached to the channel before the channel is enabled.
type stream interface {
	Read(b []byte) (int, error)  // io.EOF after the peer's FIN
	Write(b []byte) (int, error) // waits for ring space
	CloseWrite() error           // sends the FIN once
	Close() error                // FIN if not sent; wakes blocked calls
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
}

// errNoDataPath: the pipe framing a connection's bytes travel in is not
// part of this build yet.
var errNoDataPath = errors.New("hvsock: no data path: the byte-mode pipe is not built in")

// attachStream gives ch its data path, receiving at most maxBuffered
// bytes ahead of the reader.
func attachStream(ch *channel.Channel, maxBuffered int) (stream, error) {
	_ = maxBuffered
	err := ch.SetProcessPacketCallbacks(func(_ *channel.Channel, p *channel.Packet, _ []byte, _ channel.PacketFlags) {
		p.Complete(nil)
	}, nil)
	if err != nil {
		return nil, err
	}
	return noStream{}, nil
}

// noStream is the data path until the pipe framing is built in.
type noStream struct{}

func (noStream) Read([]byte) (int, error)         { return 0, errNoDataPath }
func (noStream) Write([]byte) (int, error)        { return 0, errNoDataPath }
func (noStream) CloseWrite() error                { return nil }
func (noStream) Close() error                     { return nil }
func (noStream) SetReadDeadline(time.Time) error  { return nil }
func (noStream) SetWriteDeadline(time.Time) error { return nil }
