package ringtext

import (
	"encoding/hex"

	"github.com/govmbus/govmbus/ring"
)

// Packet is one packet as `ring read` and `ring dump --json` print it;
// fields that do not apply to the packet's type are left out.
type Packet struct {
	Offset         *uint32         `json:"offset,omitempty"`
	Type           uint16          `json:"type"`
	Flags          uint16          `json:"flags"`
	TxID           uint64          `json:"txid"`
	Payload        string          `json:"payload"` // hex, padding included
	Ranges         []Range         `json:"ranges,omitempty"`
	TransferSet    *uint16         `json:"transfer_set,omitempty"`
	TransferRanges []TransferRange `json:"transfer_ranges,omitempty"`
	// IC is the in-band payload decoded as an IC message, or ICError why
	// it is not one; both empty unless asked for (DecodeIC).
	IC      *IC    `json:"ic,omitempty"`
	ICError string `json:"ic_error,omitempty"`
}

// Range is one GPA range of a gpa-direct packet.
type Range struct {
	Offset uint32   `json:"offset"`
	Count  uint32   `json:"count"`
	PFNs   []uint64 `json:"pfns"`
}

// TransferRange is one range of a transfer-pages packet.
type TransferRange struct {
	Offset uint32 `json:"offset"`
	Count  uint32 `json:"count"`
}

// FromPacket is p's form, with its offset in the ring if withOffset. It
// copies what it keeps: p may be committed afterwards.
func FromPacket(p *ring.Packet, withOffset bool) Packet {
	j := Packet{
		Type:    uint16(p.Type),
		Flags:   p.Flags,
		TxID:    p.TransactionID,
		Payload: hex.EncodeToString(p.Payload()),
	}
	if withOffset {
		off := p.Offset
		j.Offset = &off
	}
	for _, r := range p.Ranges {
		j.Ranges = append(j.Ranges, Range{Offset: r.ByteOffset, Count: r.ByteCount, PFNs: append([]uint64(nil), r.PFNs...)})
	}
	if p.Type == ring.TypeTransferPages {
		set := p.TransferPageSet
		j.TransferSet = &set
		for _, tr := range p.TransferRanges {
			j.TransferRanges = append(j.TransferRanges, TransferRange{Offset: tr.Offset, Count: tr.Count})
		}
	}
	return j
}
