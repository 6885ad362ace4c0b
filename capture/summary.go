package capture

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/govmbus/govmbus/protocol"
)

// Summary is a record as vmbus capture read prints it: decoded as far as
// the record header and a descriptor or message type go.
type Summary struct {
	Section   int       `json:"section"`
	Time      time.Time `json:"time"`
	Guest     uint64    `json:"guest"`
	Channel   uint32    `json:"channel"`
	Kind      string    `json:"kind"`
	Dir       string    `json:"dir"`
	Type      string    `json:"type,omitempty"` // control message or packet type
	TxID      *uint64   `json:"txid,omitempty"` // packets only
	Flags     *uint16   `json:"pkt_flags,omitempty"`
	Len       uint32    `json:"len"`
	Truncated bool      `json:"truncated,omitempty"`
	Event     any       `json:"event,omitempty"`
	Bytes     string    `json:"bytes,omitempty"` // hex, as captured (control messages and packets)
}

// packetTypeName names the ring packet types (WIRE.md §2).
func packetTypeName(t uint16) string {
	switch t {
	case 6:
		return "InBand"
	case 7:
		return "TransferPages"
	case 9:
		return "GpaDirect"
	case 11:
		return "Completion"
	}
	return "PacketType" + strconv.Itoa(int(t))
}

// Summarize decodes rec. It never fails: what does not decode is left
// out.
func Summarize(rec *Record) Summary {
	s := Summary{
		Section: rec.Section, Time: rec.Time, Guest: rec.Guest, Channel: rec.Channel,
		Kind: rec.Kind.String(), Dir: rec.Dir.String(), Len: rec.OrigLen,
		Truncated: rec.Flags&FlagTruncated != 0,
	}
	switch rec.Kind {
	case KindControl:
		if t, err := protocol.PeekType(rec.Data); err == nil {
			s.Type = t.String()
		}
		s.Bytes = hex.EncodeToString(rec.Data)
	case KindPacket:
		if d, err := ParseDescriptor(rec.Data); err == nil {
			s.Type = packetTypeName(d.Type)
			s.TxID, s.Flags = &d.TransactionID, &d.Flags
		}
		s.Bytes = hex.EncodeToString(rec.Data)
	case KindEvent:
		var v any
		if json.Unmarshal(rec.Data, &v) == nil {
			s.Event = v
		} else {
			s.Event = string(rec.Data)
		}
	}
	return s
}

// String is the summary on one line, without its bytes.
func (s *Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s s%d guest=%d ch=%d %s %s", s.Time.UTC().Format("15:04:05.000000000"), s.Section, s.Guest, s.Channel, s.Dir, s.Kind)
	if s.Type != "" {
		fmt.Fprintf(&b, " %s", s.Type)
	}
	if s.TxID != nil {
		fmt.Fprintf(&b, " txid=%#x flags=%#x", *s.TxID, *s.Flags)
	}
	fmt.Fprintf(&b, " len=%d", s.Len)
	if s.Truncated {
		b.WriteString(" truncated")
	}
	if s.Event != nil {
		e, _ := json.Marshal(s.Event)
		fmt.Fprintf(&b, " %s", e)
	}
	return b.String()
}

// Filter selects records: every term must match. ParseFilter makes one.
type Filter struct{ terms []term }

type term struct{ key, val string }

// filterKeys are the keys ParseFilter knows.
var filterKeys = map[string]bool{"guest": true, "channel": true, "kind": true, "dir": true, "type": true, "txid": true}

// ParseFilter parses EXPR: terms KEY=VALUE separated by commas or spaces,
// all of which must match (an empty EXPR matches every record). Keys:
// guest and channel (numbers), kind (control, packet, signal, event), dir
// (in: guest→host, out: host→guest), type (a control message type such as
// OpenChannel, or a packet type: InBand, Completion, GpaDirect,
// TransferPages; case-insensitive) and txid (a packet's transaction id,
// decimal or 0x hex).
func ParseFilter(expr string) (*Filter, error) {
	f := &Filter{}
	for _, t := range strings.FieldsFunc(expr, func(r rune) bool { return r == ',' || r == ' ' }) {
		k, v, ok := strings.Cut(t, "=")
		if !ok || !filterKeys[k] || v == "" {
			return nil, fmt.Errorf("capture: filter term %q (want KEY=VALUE, KEY one of guest, channel, kind, dir, type, txid)", t)
		}
		switch k {
		case "guest", "channel", "txid":
			if _, err := strconv.ParseUint(v, 0, 64); err != nil {
				return nil, fmt.Errorf("capture: filter term %q: not a number", t)
			}
		case "kind":
			if v != "control" && v != "packet" && v != "signal" && v != "event" {
				return nil, fmt.Errorf("capture: filter term %q (kind: control, packet, signal or event)", t)
			}
		case "dir":
			if v != "in" && v != "out" {
				return nil, fmt.Errorf("capture: filter term %q (dir: in or out)", t)
			}
		case "type":
			if !knownType(v) {
				return nil, fmt.Errorf("capture: filter term %q: no control message or packet type of that name", t)
			}
		}
		f.terms = append(f.terms, term{k, v})
	}
	return f, nil
}

// knownType reports whether v (case aside) is a type name Summarize can
// give: a control message type's, a packet type's, or the numbered name
// of one it does not know.
func knownType(v string) bool {
	for t := range 256 {
		if mt := protocol.MessageType(t); mt.Known() && strings.EqualFold(mt.String(), v) {
			return true
		}
	}
	for _, pt := range []uint16{6, 7, 9, 11} {
		if strings.EqualFold(packetTypeName(pt), v) {
			return true
		}
	}
	lv := strings.ToLower(v)
	if n, ok := strings.CutPrefix(lv, "packettype"); ok {
		_, err := strconv.ParseUint(n, 10, 16)
		return err == nil
	}
	if n, ok := strings.CutPrefix(lv, "messagetype("); ok {
		n, ok = strings.CutSuffix(n, ")")
		_, err := strconv.ParseUint(n, 10, 32)
		return ok && err == nil
	}
	return false
}

// Match reports whether s passes every term.
func (f *Filter) Match(s *Summary) bool {
	for _, t := range f.terms {
		var ok bool
		switch t.key {
		case "guest":
			n, _ := strconv.ParseUint(t.val, 0, 64)
			ok = s.Guest == n
		case "channel":
			n, _ := strconv.ParseUint(t.val, 0, 64)
			ok = uint64(s.Channel) == n
		case "txid":
			n, _ := strconv.ParseUint(t.val, 0, 64)
			ok = s.TxID != nil && *s.TxID == n
		case "kind":
			ok = s.Kind == t.val
		case "dir":
			ok = s.Dir == t.val
		case "type":
			ok = strings.EqualFold(s.Type, t.val)
		}
		if !ok {
			return false
		}
	}
	return true
}

// Print reads the capture in r and prints the records f matches to out:
// one line each, or one JSON object per line with asJSON. It returns the
// records printed, and the error that ended the file early, if one did.
func Print(out io.Writer, r io.Reader, f *Filter, asJSON bool) (int, error) {
	rd := NewReader(r)
	enc := json.NewEncoder(out)
	n := 0
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		s := Summarize(&rec)
		if f != nil && !f.Match(&s) {
			continue
		}
		n++
		if asJSON {
			err = enc.Encode(&s)
		} else {
			_, err = fmt.Fprintln(out, s.String())
		}
		if err != nil {
			return n, err
		}
	}
}
