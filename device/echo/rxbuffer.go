package echo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/gpa"
)

// The receive-buffer messages (see the package doc).
const (
	// rxMagic opens an announce: "rxbuffer" read as a little-endian u64.
	rxMagic = 0x7265666675627872
	// rxAnnounceSize is an announce's length.
	rxAnnounceSize = 24
	// RxSetID is the transfer page set id the client announces.
	RxSetID = 0xEC40
	// Announce completion statuses.
	rxAccepted = 1
	rxRefused  = 2
	// rxAnswer is the inline message of an answer sent through the
	// buffer: {u32 rxAnswer, u32 0}; the echoed bytes are its one range.
	rxAnswer = 1
	// transferAnswers is how many answers through the buffer may wait
	// for the guest's completion at once, beyond the in-band answers;
	// past it (or when the buffer is full) a server answers in band.
	transferAnswers = 4096
	// MaxRxBuffer is the largest receive buffer a client sets up: one
	// GPADL range holds at most 8190 pages.
	MaxRxBuffer = 8190 * pageSize
	pageSize    = 4096
)

// announce builds the message that offers GPADL gpadl as set RxSetID.
func announce(gpadl uint32) []byte {
	b := make([]byte, rxAnnounceSize)
	binary.LittleEndian.PutUint64(b[0:], rxMagic)
	binary.LittleEndian.PutUint32(b[8:], gpadl)
	// b[12:16] stays 0: a stream packet's length field there is at
	// least HeaderSize, so no stream packet reads as an announce.
	binary.LittleEndian.PutUint16(b[16:], RxSetID)
	return b
}

// parseAnnounce reports whether payload is an announce and, if so, its
// GPADL and set id. payload is the packet's bytes, padding included.
func parseAnnounce(payload []byte) (gpadl uint32, set uint16, ok bool) {
	if len(payload) < rxAnnounceSize || binary.LittleEndian.Uint64(payload) != rxMagic || binary.LittleEndian.Uint32(payload[12:]) != 0 {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint32(payload[8:]), binary.LittleEndian.Uint16(payload[16:]), true
}

// answerMsg is the inline payload of every answer through the buffer.
var answerMsg = []byte{rxAnswer, 0, 0, 0, 0, 0, 0, 0}

// takeAnnounce maps the buffer an announce names and answers it, on the
// receive goroutine. One buffer per channel: a second is refused.
func (s *Server) takeAnnounce(p *channel.Packet, gpadl uint32, set uint16) {
	st := uint32(rxRefused)
	// Only RxSetID: a restored server finds its buffer by that id.
	if s.rx.Load() == nil && set == RxSetID {
		if ts, err := s.ch.MapTransferPageSet(set, gpadl); err == nil {
			s.rx.Store(ts)
			st = rxAccepted
		}
	}
	var resp [8]byte
	binary.LittleEndian.PutUint32(resp[:], st)
	p.Complete(resp[:])
}

// sendTransfer answers payload through the receive buffer with answer
// slot a. It reports false when it sent nothing (the caller answers in
// band).
func (s *Server) sendTransfer(ts *channel.TransferPageSet, payload []byte) bool {
	a := s.answers.take()
	if a == nil && s.answers.len() < s.limit+transferAnswers && s.addAnswer() == nil {
		a = s.answers.take()
	}
	if a == nil {
		return false
	}
	s.xdata[0] = payload
	a.sent++
	err := a.op.SendTransferPages(answerMsg, ts, s.xdata[:], channel.SendWaitForCompletion)
	s.xdata[0] = nil
	if err != nil {
		a.sent--
		s.fallbacks.Add(1)
		return false
	}
	return true
}

// TransferFallbacks is how many answers a server in receive-buffer mode
// sent in band because the buffer (or its answer slots) had no room.
func (s *Server) TransferFallbacks() uint64 { return s.fallbacks.Load() }

// rxBuffer is a client's receive buffer: guest pages shared as a GPADL.
type rxBuffer struct {
	pfn   uint64
	pages int
	gpadl uint32
}

// UseRxBuffer sets up a receive buffer of size bytes (rounded up to whole
// pages, at most MaxRxBuffer) and announces it to the VSP, which from then
// on answers stream packets through it (transfer-page packets) instead of
// in band. Call it once, before Stream. The buffer is released when the
// client closes.
func (c *Client) UseRxBuffer(ctx context.Context, size int) error {
	if size <= 0 || size > MaxRxBuffer {
		return fmt.Errorf("echo: receive buffer of %d bytes: want 1 to %d", size, MaxRxBuffer)
	}
	if c.rx != nil {
		return errors.New("echo: the receive buffer is set up already")
	}
	pages := (size + pageSize - 1) / pageSize
	pfn, err := c.cl.Pages().Alloc(pages)
	if err != nil {
		return fmt.Errorf("echo: receive buffer: %w", err)
	}
	pfns := make([]uint64, pages)
	for i := range pfns {
		pfns[i] = pfn + uint64(i)
	}
	id, err := c.ch.CreateGpadl(ctx, []gpa.Range{{ByteCount: uint32(pages * pageSize), PFNs: pfns}}, 0)
	if err != nil {
		c.cl.Pages().Free(pfn, pages)
		return fmt.Errorf("echo: receive buffer: %w", err)
	}
	c.rx = &rxBuffer{pfn: pfn, pages: pages, gpadl: id}
	if err := c.ch.AddTransferPageSet(RxSetID, id); err != nil {
		return fmt.Errorf("echo: receive buffer: %w", err)
	}
	var resp [16]byte
	timeout := DefaultIdle
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Millisecond, time.Until(d))
	}
	n, err := c.ch.SendSynchronousRequest(announce(id), nil, channel.SendWaitForCompletion, resp[:], timeout)
	if err != nil {
		return fmt.Errorf("echo: announcing the receive buffer: %w", err)
	}
	if n < 4 || binary.LittleEndian.Uint32(resp[:]) != rxAccepted {
		return errors.New("echo: the VSP refused the receive buffer")
	}
	return nil
}

// receiveTransfer checks each range of a transfer-page packet, read once
// into the receive goroutine's own buffer.
func (c *Client) receiveTransfer(s *streamState, p *channel.Packet) {
	for i := range p.TransferRanges() {
		n, err := p.ReadTransferRange(i, c.rxCopy)
		if err != nil {
			continue
		}
		c.rxPackets.Add(1)
		if s != nil {
			s.receive(c.rxCopy[:n])
		} else {
			c.stray.Add(1)
		}
	}
}

// RxBufferPackets is how many answers came through the receive buffer.
func (c *Client) RxBufferPackets() uint64 { return c.rxPackets.Load() }

// freeRx returns the receive buffer's pages once the channel is closed
// (the GPADL went with it).
func (c *Client) freeRx() {
	if c.rx != nil {
		c.cl.Pages().Free(c.rx.pfn, c.rx.pages)
		c.rx = nil
	}
}
