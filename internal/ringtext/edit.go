package ringtext

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/govmbus/govmbus/ring"
)

// ErrFull is a packet that does not fit the ring file: its free space,
// or the most a packet can be.
var ErrFull = errors.New("ring full")

// WriteSpec is one packet as `vmbus ring write` describes it: a type name
// (inband, completion, gpa-direct, transfer-pages), the payload in hex,
// and ranges in the forms ParseGPARange and ParseTransferRange read.
type WriteSpec struct {
	Type                string
	TransactionID       uint64
	CompletionRequested bool
	PayloadHex          string
	Ranges              []string
	TransferSet         uint16
	HasTransferSet      bool // TransferSet was given
	TransferRanges      []string
}

// Packet builds the packet and payload s describes, or says what is wrong
// with s.
func (s WriteSpec) Packet() (*ring.OutPacket, []byte, error) {
	p := &ring.OutPacket{TransactionID: s.TransactionID, TransferPageSet: s.TransferSet}
	switch s.Type {
	case "inband":
		p.Type = ring.TypeInBand
	case "completion":
		p.Type = ring.TypeCompletion
	case "gpa-direct":
		p.Type = ring.TypeGPADirect
	case "transfer-pages":
		p.Type = ring.TypeTransferPages
	default:
		return nil, nil, fmt.Errorf("--type %q: want inband, completion, gpa-direct or transfer-pages", s.Type)
	}
	if s.CompletionRequested {
		p.Flags |= ring.FlagCompletionRequested
	}
	payload, err := hex.DecodeString(s.PayloadHex)
	if err != nil {
		return nil, nil, fmt.Errorf("--payload: %w", err)
	}
	if len(s.Ranges) > 0 && p.Type != ring.TypeGPADirect {
		return nil, nil, errors.New("--range applies to gpa-direct packets only")
	}
	if (len(s.TransferRanges) > 0 || s.HasTransferSet) && p.Type != ring.TypeTransferPages {
		return nil, nil, errors.New("--transfer-set and --transfer-range apply to transfer-pages packets only")
	}
	for _, v := range s.Ranges {
		r, err := ParseGPARange(v)
		if err != nil {
			return nil, nil, fmt.Errorf("--range %q: %w", v, err)
		}
		p.Ranges = append(p.Ranges, r)
	}
	if p.Type == ring.TypeGPADirect && len(p.Ranges) == 0 {
		return nil, nil, errors.New("a gpa-direct packet needs at least one --range")
	}
	for _, v := range s.TransferRanges {
		tr, err := ParseTransferRange(v)
		if err != nil {
			return nil, nil, fmt.Errorf("--transfer-range %q: %w", v, err)
		}
		p.TransferRanges = append(p.TransferRanges, tr)
	}
	if p.Type == ring.TypeTransferPages && len(p.TransferRanges) == 0 {
		return nil, nil, errors.New("a transfer-pages packet needs at least one --transfer-range")
	}
	return p, payload, nil
}

// AppendFile writes one packet into the ring file at path and publishes
// the write index, changing no other control field. A packet that does
// not fit fails with ErrFull.
func AppendFile(path string, p *ring.OutPacket, payload []byte) error {
	rf, err := ring.OpenFile(path, true)
	if err != nil {
		return err
	}
	defer rf.Close()
	w, err := ring.NewWriter(rf.Region())
	if err != nil {
		return err
	}
	if err := w.Write(p, payload); err != nil {
		switch {
		case errors.Is(err, ring.ErrFull):
			free, _ := w.Free()
			return fmt.Errorf("%w: the packet needs %d bytes, %d are free", ErrFull, ring.PacketLen(p.HeaderLen(), len(payload)), max(free, 0))
		case errors.Is(err, ring.ErrTooLarge):
			return fmt.Errorf("%w: %w", ErrFull, err)
		}
		return err
	}
	w.Commit()
	return nil
}

// ConsumeFile reads the unread packets of the ring file at path (at most
// limit, 0 for all), hands each to emit, and publishes the new read
// index. If the ring is corrupt, the packets before the damage are
// consumed and the error names the damage; if emit fails, nothing of the
// packet it failed on is consumed.
func ConsumeFile(path string, limit int, emit func(Packet) error) error {
	rf, err := ring.OpenFile(path, true)
	if err != nil {
		return err
	}
	defer rf.Close()
	r, err := ring.NewReader(rf.Region())
	if err != nil {
		return err
	}
	var p ring.Packet
	var rerr error
	for n := 0; limit == 0 || n < limit; n++ {
		if err := r.Next(&p); err != nil {
			if !errors.Is(err, ring.ErrEmpty) {
				rerr = err
			}
			break
		}
		if err := emit(FromPacket(&p, false)); err != nil {
			r.Revert()
			return err
		}
	}
	r.Commit()
	return rerr
}
