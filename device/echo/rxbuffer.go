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

// Answers through the receive buffer are staged and go out as the
// ranges of one transfer-page packet when the receive batch ends (or the
// stage fills), so that one completion from the guest returns them all:
// a packet per answer cost three ring packets an answer, the guest's
// completion one of them.
const (
	// stageRanges is the most answers in one transfer-page packet, well
	// within the channel's default chain length (256) on both ends.
	stageRanges = 64
	// stageBytes is the most bytes staged; a longer answer goes alone.
	stageBytes = 64 << 10
)

// stage is the answers waiting for the batch's end: their bytes, copied
// out of the guest's ring, and their slices of them. Owned by the
// receive goroutine; the suspend callback, which runs once that
// goroutine has parked, sends what a pause left staged.
type stage struct {
	buf  []byte
	data [stageRanges][]byte
	n    int
}

// stageAnswer stages payload's answer, sending what is staged first if
// it has no room. It reports false when payload is too long to stage:
// the caller answers it at once.
func (s *Server) stageAnswer(ts *channel.TransferPageSet, payload []byte) bool {
	st := &s.stage
	if len(payload) > stageBytes {
		s.flush(ts)
		st.data[0] = payload
		ok := s.sendTransfer(ts, st.data[:1])
		st.data[0] = nil
		return ok
	}
	if st.n == stageRanges || len(st.buf)+len(payload) > stageBytes {
		s.flush(ts)
	}
	if st.buf == nil {
		st.buf = make([]byte, 0, stageBytes)
	}
	off := len(st.buf)
	st.buf = append(st.buf, payload...)
	st.data[st.n] = st.buf[off:len(st.buf):len(st.buf)]
	st.n++
	return true
}

// batchEnd is the ProcessingComplete callback: the ring is empty, the
// staged answers go out. A batch that a pause stops ends without it:
// suspend sends what is left.
func (s *Server) batchEnd(*channel.Channel, int) {
	s.flushBurst()
	if ts := s.rx.Load(); ts != nil {
		s.flush(ts)
	}
}

// flush sends the staged answers through the buffer in one packet, or,
// if the buffer or the answer slots have no room, each in band.
func (s *Server) flush(ts *channel.TransferPageSet) {
	s.flushVia(ts, false)
}

// flushInBand sends the staged answers in band: at a suspend, where they
// wait in the send queue, which is saved, for the channel to start again.
func (s *Server) flushInBand() { s.flushVia(nil, true) }

func (s *Server) flushVia(ts *channel.TransferPageSet, inBand bool) {
	st := &s.stage
	if st.n == 0 {
		return
	}
	if inBand || !s.sendTransfer(ts, st.data[:st.n]) {
		for _, d := range st.data[:st.n] {
			s.sendInBand(d)
		}
	}
	clear(st.data[:st.n])
	st.n, st.buf = 0, st.buf[:0]
}

// sendInBand answers in band an answer no incoming packet waits for:
// TrySend, or an answer packet that queues a copy when the ring is full.
func (s *Server) sendInBand(payload []byte) {
	if s.ch.TrySend(payload) == nil {
		return
	}
	a := s.answers.take()
	if a == nil && s.answers.len() < s.limit+transferAnswers && s.addAnswer() == nil {
		a = s.answers.take()
	}
	if a != nil {
		a.send(payload) //nolint:errcheck // too large for the ring, or closing: dropped, as process drops it
	}
}

// sendTransfer answers data through the receive buffer, one range each,
// in one transfer-page packet. It reports false when it sent nothing.
func (s *Server) sendTransfer(ts *channel.TransferPageSet, data [][]byte) bool {
	a := s.answers.take()
	if a == nil && s.answers.len() < s.limit+transferAnswers && s.addAnswer() == nil {
		a = s.answers.take()
	}
	if a == nil {
		s.fallbacks.Add(uint64(len(data)))
		return false
	}
	a.sent++
	if err := a.op.SendTransferPages(answerMsg, ts, data, channel.SendWaitForCompletion); err != nil {
		a.sent--
		s.fallbacks.Add(uint64(len(data)))
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
