package ringtext

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/govmbus/govmbus/device/ic"
	"github.com/govmbus/govmbus/ring"
)

// IC is one integration-component message taken apart: `ic decode
// --json`, and a packet's "ic" object in `ring dump --ic --json`.
type IC struct {
	Pipe   *ICPipe  `json:"pipe,omitempty"`
	Header ICHeader `json:"header"`
	Body   any      `json:"body"`
}

// ICPipe is the pipe header of an IC message that has one.
type ICPipe struct {
	Type uint32 `json:"type"`
	Size uint32 `json:"size"`
}

// ICHeader is the IC header, its fields named.
type ICHeader struct {
	Framework  string `json:"framework"`
	Type       string `json:"type"`
	MsgVersion string `json:"message_version"`
	Size       uint16 `json:"size"`
	Status     string `json:"status"`
	TxID       uint8  `json:"transaction_id"`
	Flags      string `json:"flags"`
}

// DecodeIC takes a message apart: with a pipe header when it starts with
// one (type 1), else as a bare IC message; the body by message type.
// Padding after the message is ignored. Bytes that are not an IC message
// of a type it knows are an error saying why.
func DecodeIC(b []byte) (*IC, error) {
	var m *ic.Message
	var err error
	if len(b) >= ic.PipeHeaderSize && binary.LittleEndian.Uint32(b) == 1 {
		m, err = ic.Parse(b)
	} else {
		m, err = ic.ParseIC(b)
	}
	if err != nil {
		return nil, err
	}
	h := m.Header
	d := &IC{Header: ICHeader{
		Framework: h.Framework.String(), Type: h.Type.String(), MsgVersion: h.MsgVersion.String(),
		Size: h.Size, Status: ic.StatusName(h.Status), TxID: h.TxID, Flags: icFlags(h.Flags),
	}}
	if m.HasPipe {
		d.Pipe = &ICPipe{m.PipeType, m.PipeSize}
	}
	response := h.Flags&ic.FlagResponse != 0
	switch h.Type {
	case ic.MsgNegotiate:
		if response {
			fw, msg, ok, err := ic.Chosen(m.Body)
			if err != nil {
				return nil, err
			}
			if !ok {
				d.Body = map[string]any{"chosen": nil, "common_version": false}
			} else {
				d.Body = map[string]any{"framework": fw.String(), "message": msg.String()}
			}
			break
		}
		n, err := ic.UnmarshalNegotiate(m.Body)
		if err != nil {
			return nil, err
		}
		d.Body = map[string]any{"frameworks": versions(n.Frameworks), "messages": versions(n.Messages)}
	case ic.MsgHeartbeat:
		hb, err := ic.UnmarshalHeartbeat(m.Body)
		if err != nil {
			return nil, err
		}
		d.Body = hb
	case ic.MsgShutdown:
		s, err := ic.UnmarshalShutdown(m.Body)
		if err != nil {
			return nil, err
		}
		d.Body = map[string]any{"action": s.Action(), "reason": fmt.Sprintf("%#x", s.Reason), "timeout_s": s.Timeout, "flags": s.Flags, "message": s.Message}
	case ic.MsgTimeSync:
		t, err := ic.UnmarshalTimeSync(m.Body, h.MsgVersion.Major >= 4)
		if err != nil {
			return nil, err
		}
		d.Body = map[string]any{"v4": t.V4, "parent_time": t.ParentTime, "host_utc": ic.FromWindowsTime(t.ParentTime), "child_or_reference_time": t.ChildTime, "round_trip": t.RoundTrip, "flags": t.Flags, "leap": t.Leap, "stratum": t.Stratum}
	case ic.MsgKVP:
		k, err := ic.UnmarshalKVP(m.Body, response)
		if err != nil {
			return nil, err
		}
		d.Body = map[string]any{"operation": ic.OpName(k.Op), "pool": ic.PoolName(k.Pool), "index": k.Index, "value_type": k.ValueType, "key": k.Key, "value": k.Value}
	default:
		return nil, fmt.Errorf("message type %v is not decoded (docs/ICS.md: not implemented)", h.Type)
	}
	return d, nil
}

// WriteText writes d as `ic decode` prints it, each line after indent:
// the pipe header if there is one, the IC header, the body as JSON.
func (d *IC) WriteText(w io.Writer, indent string) error {
	var b strings.Builder
	if d.Pipe != nil {
		fmt.Fprintf(&b, "%spipe: type %d size %d\n", indent, d.Pipe.Type, d.Pipe.Size)
	}
	h := d.Header
	fmt.Fprintf(&b, "%sic: %s framework %s message %s size %d status %s id %d flags %s\n", indent, h.Type, h.Framework, h.MsgVersion, h.Size, h.Status, h.TxID, h.Flags)
	body, err := json.Marshal(d.Body)
	if err != nil {
		return err
	}
	fmt.Fprintf(&b, "%sbody: %s\n", indent, body)
	_, err = io.WriteString(w, b.String())
	return err
}

// DecodeIC decodes the payload of an in-band packet as an IC message
// (DecodeIC): into p.IC, or why it is not one into p.ICError. Packets of
// other types are left as they are.
func (p *Packet) DecodeIC() {
	if ring.PacketType(p.Type) != ring.TypeInBand {
		return
	}
	b, err := hex.DecodeString(p.Payload)
	if err == nil {
		p.IC, err = DecodeIC(b)
	}
	if err != nil {
		p.IC, p.ICError = nil, strings.TrimPrefix(err.Error(), "ic: ")
	}
}

func versions(vs []ic.Version) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return out
}

func icFlags(f uint8) string {
	var s []string
	for _, x := range []struct {
		bit  uint8
		name string
	}{{ic.FlagTransaction, "transaction"}, {ic.FlagRequest, "request"}, {ic.FlagResponse, "response"}} {
		if f&x.bit != 0 {
			s = append(s, x.name)
		}
	}
	if rest := f &^ (ic.FlagTransaction | ic.FlagRequest | ic.FlagResponse); rest != 0 {
		s = append(s, fmt.Sprintf("%#x", rest))
	}
	return strings.Join(s, "|")
}
