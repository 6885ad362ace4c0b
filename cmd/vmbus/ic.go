package main

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/device/ic"
)

// newICCmd is `vmbus ic <subcommand>`: the integration components' tools.
func newICCmd() *cobra.Command {
	return groupCmd("ic <subcommand>", "Hyper-V integration components: decode their messages",
		"Tools for the integration components (heartbeat, shutdown, time sync, KVP); docs/ICS.md.",
		newICDecodeCmd())
}

// icDecoded is `vmbus ic decode --json`.
type icDecoded struct {
	Pipe   *icPipeJSON  `json:"pipe,omitempty"`
	Header icHeaderJSON `json:"header"`
	Body   any          `json:"body"`
}

type icPipeJSON struct {
	Type uint32 `json:"type"`
	Size uint32 `json:"size"`
}

type icHeaderJSON struct {
	Framework  string `json:"framework"`
	Type       string `json:"type"`
	MsgVersion string `json:"message_version"`
	Size       uint16 `json:"size"`
	Status     string `json:"status"`
	TxID       uint8  `json:"transaction_id"`
	Flags      string `json:"flags"`
}

func newICDecodeCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "decode HEX [--json]",
		Short: "Decode one IC message: pipe header if present, IC header, the body by message type",
		Args:  exactArgs(1, "one hex string"),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := hex.DecodeString(strings.Join(strings.Fields(args[0]), ""))
			if err != nil {
				return usageErrorf("ic decode: bad hex: %v", err)
			}
			d, err := decodeIC(b)
			if err != nil {
				return usageErrorf("ic decode: %v", err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(w).Encode(d)
			}
			if d.Pipe != nil {
				fmt.Fprintf(w, "pipe: type %d size %d\n", d.Pipe.Type, d.Pipe.Size)
			}
			h := d.Header
			fmt.Fprintf(w, "ic: %s framework %s message %s size %d status %s id %d flags %s\n", h.Type, h.Framework, h.MsgVersion, h.Size, h.Status, h.TxID, h.Flags)
			body, _ := json.Marshal(d.Body)
			fmt.Fprintf(w, "body: %s\n", body)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

// decodeIC takes a message apart: with a pipe header when it starts with
// one (type 1), else as a bare IC message.
func decodeIC(b []byte) (*icDecoded, error) {
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
	d := &icDecoded{Header: icHeaderJSON{
		Framework: h.Framework.String(), Type: h.Type.String(), MsgVersion: h.MsgVersion.String(),
		Size: h.Size, Status: ic.StatusName(h.Status), TxID: h.TxID, Flags: icFlags(h.Flags),
	}}
	if m.HasPipe {
		d.Pipe = &icPipeJSON{m.PipeType, m.PipeSize}
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
