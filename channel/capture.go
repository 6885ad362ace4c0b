package channel

import (
	"encoding/binary"

	"github.com/govmbus/govmbus/capture"
	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/ring"
)

// epTap is where a server endpoint records what crosses its rings
// (host.Channel.Capture): the attachment, and the guest and channel the
// records name. A client endpoint has none: nothing is loaded.
type epTap struct {
	tap   *capture.Tap
	guest uint64
	id    uint32
}

// tapOf is the tap of hc's endpoint.
func tapOf(tap *capture.Tap, guest uint64, id uint32) epTap {
	return epTap{tap: tap, guest: guest, id: id}
}

// The endpoint's ring writes and signals go through these, which record
// what was written when a capture is attached: one atomic load when none
// is. Writes are recorded when they succeed, before their commit (the
// channel never reverts a written packet).

func (ep *endpoint) writeInBand(txid uint64, flags uint16, payload []byte) error {
	err := ep.w.WriteInBand(txid, flags, payload)
	if err == nil {
		if w := ep.cap.tap.Load(); w != nil {
			w.Packet(ep.cap.guest, ep.cap.id, capture.Out, uint16(ring.TypeInBand), flags, txid, nil, payload, nil)
		}
	}
	return err
}

// writeInBandParts is writeInBand of a payload in parts (TrySendParts);
// a capture records them joined, in capTx's buffer (sendMu).
func (ep *endpoint) writeInBandParts(txid uint64, flags uint16, parts [][]byte) error {
	err := ep.w.WriteInBand(txid, flags, parts...)
	if err == nil {
		if w := ep.cap.tap.Load(); w != nil {
			payload := ep.capTx[:0]
			if len(parts) == 1 {
				payload = parts[0]
			} else {
				for _, p := range parts {
					payload = append(payload, p...)
				}
				ep.capTx = payload
			}
			w.Packet(ep.cap.guest, ep.cap.id, capture.Out, uint16(ring.TypeInBand), flags, txid, nil, payload, nil)
		}
	}
	return err
}

func (ep *endpoint) writeCompletion(txid uint64, payload []byte) error {
	err := ep.w.WriteCompletion(txid, payload)
	if err == nil {
		if w := ep.cap.tap.Load(); w != nil {
			w.Packet(ep.cap.guest, ep.cap.id, capture.Out, uint16(ring.TypeCompletion), 0, txid, nil, payload, nil)
		}
	}
	return err
}

// writePacket writes a packet of any type; sendMu guards capTx.
func (ep *endpoint) writePacket(p *ring.OutPacket, payload []byte) error {
	err := ep.w.Write(p, payload)
	if err == nil {
		if w := ep.cap.tap.Load(); w != nil {
			ep.capTx = appendTypeHeader(ep.capTx[:0], p.Type, p.Ranges, p.TransferPageSet, p.SenderOwnsSet, p.TransferRanges)
			w.Packet(ep.cap.guest, ep.cap.id, capture.Out, uint16(p.Type), p.Flags, p.TransactionID, ep.capTx, payload, nil)
		}
	}
	return err
}

// signal signals the peer.
func (ep *endpoint) signal() {
	if w := ep.cap.tap.Load(); w != nil {
		w.Signal(ep.cap.guest, ep.cap.id, capture.Out)
	}
	ep.out.Signal() //nolint:errcheck // a gone peer is noticed by the control plane
}

// capturedRead records the packet the receive loop consumed last (in
// ep.pkt): from its validated copies and a copy of its payload as it is
// in the ring now. On the receive goroutine, which alone uses capRx.
func (ep *endpoint) capturedRead() {
	w := ep.cap.tap.Load()
	if w == nil {
		return
	}
	p := &ep.pkt
	ep.capRx = appendTypeHeader(ep.capRx[:0], p.Type, p.Ranges, p.TransferPageSet, p.SenderOwnsSet, p.TransferRanges)
	a, b := p.Segments()
	w.Packet(ep.cap.guest, ep.cap.id, capture.In, uint16(p.Type), p.Flags, p.TransactionID, ep.capRx, a, b)
}

// capturedWake records a wake-up of the receive loop: a signal from the
// guest, or the channel's own (Start, a completion freed, ...).
func (ep *endpoint) capturedWake() {
	if w := ep.cap.tap.Load(); w != nil {
		w.Signal(ep.cap.guest, ep.cap.id, capture.In)
	}
}

// appendTypeHeader appends the type header a packet of type typ carries
// after its descriptor, as on the wire (WIRE.md §2).
func appendTypeHeader(b []byte, typ ring.PacketType, ranges []gpa.Range, set uint16, owns bool, xfer []ring.TransferRange) []byte {
	switch typ {
	case ring.TypeGPADirect:
		b = binary.LittleEndian.AppendUint32(b, 0)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(ranges)))
		for _, r := range ranges {
			// Ranges the ring accepted or wrote are valid.
			b, _ = gpa.AppendRange(b, r)
		}
	case ring.TypeTransferPages:
		var o byte
		if owns {
			o = 1
		}
		b = binary.LittleEndian.AppendUint16(b, set)
		b = append(b, o, 0)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(xfer)))
		for _, r := range xfer {
			b = binary.LittleEndian.AppendUint32(b, r.Count)
			b = binary.LittleEndian.AppendUint32(b, r.Offset)
		}
	}
	return b
}
