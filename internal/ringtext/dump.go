package ringtext

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/govmbus/govmbus/ring"
)

// Dump is a ring's control page and every unread packet: `ring dump
// --json`.
type Dump struct {
	DataSize        uint32   `json:"data_size"`
	WriteIndex      uint32   `json:"write_index"`
	ReadIndex       uint32   `json:"read_index"`
	InterruptMask   uint32   `json:"interrupt_mask"`
	PendingSendSize uint32   `json:"pending_send_size"`
	FeatureBits     uint32   `json:"feature_bits"`
	Packets         []Packet `json:"packets"`
	Error           string   `json:"error,omitempty"` // why the packets shown are not all there are
}

// NewDump reads the unread packets of the ring in region, whose control
// fields ctl are (ring.Inspect), consuming nothing. If the ring is
// corrupt, the dump holds the packets before the damage, its Error says
// what is wrong, and the error is returned too.
func NewDump(ctl ring.Control, region []byte) (Dump, error) {
	d := Dump{
		DataSize: ctl.DataSize, WriteIndex: ctl.WriteIndex, ReadIndex: ctl.ReadIndex,
		InterruptMask: ctl.InterruptMask, PendingSendSize: ctl.PendingSendSize, FeatureBits: ctl.FeatureBits,
		Packets: []Packet{},
	}
	var rerr error
	r, err := ring.NewReader(region)
	if err != nil {
		rerr = err
	} else {
		var p ring.Packet
		for {
			if err := r.Next(&p); err != nil {
				if !errors.Is(err, ring.ErrEmpty) {
					rerr = err
				}
				break
			}
			d.Packets = append(d.Packets, FromPacket(&p, true))
		}
	}
	if rerr != nil {
		d.Error = rerr.Error()
	}
	return d, rerr
}

// DecodeIC decodes the payload of every in-band packet as an IC message
// (Packet.DecodeIC). A payload that is not one leaves its reason in the
// packet; the dump is no less good.
func (d *Dump) DecodeIC() {
	for i := range d.Packets {
		d.Packets[i].DecodeIC()
	}
}

// WriteText writes the dump as `ring dump` prints it: the control fields,
// then a line per packet, followed by its IC message's lines, indented,
// when it was decoded (DecodeIC), or "ic: REASON" when it was not one.
func (d Dump) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "data size          %d\n", d.DataSize)
	fmt.Fprintf(&b, "write index        %#x\n", d.WriteIndex)
	fmt.Fprintf(&b, "read index         %#x\n", d.ReadIndex)
	fmt.Fprintf(&b, "interrupt mask     %d\n", d.InterruptMask)
	fmt.Fprintf(&b, "pending send size  %d\n", d.PendingSendSize)
	fmt.Fprintf(&b, "feature bits       %#x\n", d.FeatureBits)
	fmt.Fprintf(&b, "unread packets     %d\n", len(d.Packets))
	for _, p := range d.Packets {
		var off uint32
		if p.Offset != nil {
			off = *p.Offset
		}
		fmt.Fprintf(&b, "@%#06x %-14s flags=%d txid=%d payload=%s", off, ring.PacketType(p.Type), p.Flags, p.TxID, p.Payload)
		for _, r := range p.Ranges {
			fmt.Fprintf(&b, " range=%v:%d:%d", r.PFNs, r.Offset, r.Count)
		}
		if p.TransferSet != nil {
			fmt.Fprintf(&b, " transfer_set=%d", *p.TransferSet)
			for _, tr := range p.TransferRanges {
				fmt.Fprintf(&b, " transfer_range=%d:%d", tr.Offset, tr.Count)
			}
		}
		b.WriteByte('\n')
		switch {
		case p.IC != nil:
			if err := p.IC.WriteText(&b, "  "); err != nil {
				return err
			}
		case p.ICError != "":
			fmt.Fprintf(&b, "  ic: %s\n", p.ICError)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
