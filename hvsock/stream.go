package hvsock

import (
	"errors"
	"fmt"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/pipe"
)

// stream is a connection's data path: the byte-mode pipe over its
// channel (package pipe), FIN being a zero-length data packet
// (DEVICES.md §1.2, §2.6).
type stream interface {
	Read(b []byte) (int, error)  // io.EOF after the peer's FIN
	Write(b []byte) (int, error) // waits for ring space
	CloseWrite() error           // sends the FIN once
	Close() error                // FIN if there is room; wakes blocked calls
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
}

// maxPackets is how many received packets a connection holds unread for
// maxBuffered bytes: a pipe packet carries at most pipe.MaxData.
func maxPackets(maxBuffered int) int {
	return max(1, maxBuffered/pipe.MaxData)
}

// attachStream makes ch's pipe Conn, writing packets of at most maxData
// bytes and holding at most maxBuffered received bytes unread, and
// chains ev's callbacks behind the pipe's. ch is configured and not
// enabled.
func attachStream(ch *channel.Channel, maxData, maxBuffered int, ev *events) (stream, error) {
	p, err := pipe.New(ch, pipe.Config{MaxData: maxData, MaxPackets: maxPackets(maxBuffered)})
	if err != nil {
		return nil, err
	}
	cb := ch.StateCallbacks()
	post, closed := cb.PostStarted, cb.Closed
	cb.PostStarted = func(c *channel.Channel) {
		if post != nil {
			post(c)
		}
		closeOnce(ev.open)
	}
	cb.Closed = func(c *channel.Channel) {
		if closed != nil {
			closed(c)
		}
		closeOnce(ev.closed)
	}
	if err := ch.SetStateCallbacks(cb); err != nil {
		return nil, err
	}
	return pipeStream{p}, nil
}

// pipeStream is the pipe Conn with a closed channel reported as a reset.
type pipeStream struct{ *pipe.Conn }

func (s pipeStream) Read(b []byte) (int, error) {
	n, err := s.Conn.Read(b)
	return n, resetErr(err)
}

func (s pipeStream) Write(b []byte) (int, error) {
	n, err := s.Conn.Write(b)
	return n, resetErr(err)
}

func (s pipeStream) CloseWrite() error { return resetErr(s.Conn.CloseWrite()) }

// resetErr turns a channel that closed before the end of stream into
// ErrReset (ECONNRESET), keeping the pipe's error in the chain.
func resetErr(err error) error {
	if err != nil && errors.Is(err, pipe.ErrChannelClosed) {
		return fmt.Errorf("%w (%w)", ErrReset, err)
	}
	return err
}
