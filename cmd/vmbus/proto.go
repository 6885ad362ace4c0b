package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/protocol"
)

func newProtoCmd() *cobra.Command {
	return groupCmd("proto", "Decode VMBus channel-management messages", "", newProtoDecodeCmd())
}

func newProtoDecodeCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "decode HEX...",
		Short: "Decode one control message given as hex (header included) and print its fields",
		Long: `Decode one channel-management message, 8-byte header included, given as
hex digits. Whitespace between digits is ignored, so the output of a hex
dump may be pasted as several arguments; a leading 0x is allowed.

The message must have exactly one of the lengths its type accepts; the
error names the type, the length and the lengths accepted.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := parseHexArgs(args)
			if err != nil {
				return usageError(err)
			}
			m, err := protocol.Decode(b)
			if err != nil {
				return usageErrorf("bad message: %v", err)
			}
			if asJSON {
				return printMessageJSON(cmd.OutOrStdout(), m)
			}
			return printMessage(cmd.OutOrStdout(), m)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object: type, type_id, size, fields")
	return cmd
}

// parseHexArgs joins the arguments and decodes them as hex.
func parseHexArgs(args []string) ([]byte, error) {
	s := strings.Join(strings.Fields(strings.Join(args, " ")), "")
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if s == "" {
		return nil, fmt.Errorf("bad hex: no digits")
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("bad hex: %v", err)
	}
	return b, nil
}

type messageJSON struct {
	Type   string           `json:"type"`
	TypeID uint32           `json:"type_id"`
	Size   int              `json:"size"`
	Fields protocol.Message `json:"fields"`
}

func printMessageJSON(w io.Writer, m protocol.Message) error {
	enc := json.NewEncoder(w)
	return enc.Encode(messageJSON{Type: m.Type().String(), TypeID: uint32(m.Type()), Size: m.Size(), Fields: m})
}

// printMessage prints the type and one "name value" line per field, named
// as in the JSON form. The CLI is not a hot path, so it walks the struct
// by reflection rather than keeping a printer per message type.
func printMessage(w io.Writer, m protocol.Message) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s (type %d, %d bytes)\n", m.Type(), uint32(m.Type()), m.Size())
	v := reflect.ValueOf(m).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		fmt.Fprintf(&sb, "  %-30s %s\n", name, formatField(v.Field(i)))
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// formatField shows integers with names (flags, versions, states) as the
// number and the name, page addresses and data words in hex, GUIDs and
// user data as text.
func formatField(v reflect.Value) string {
	if s, ok := v.Interface().(fmt.Stringer); ok {
		switch v.Kind() {
		case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			return fmt.Sprintf("%#x (%s)", v.Uint(), s)
		}
		return s.String()
	}
	switch v.Kind() {
	case reflect.Uint64:
		return fmt.Sprintf("%#x", v.Uint())
	case reflect.Uint8, reflect.Uint16, reflect.Uint32:
		if n := v.Uint(); n > 9 {
			return fmt.Sprintf("%d (%#x)", n, n)
		}
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = fmt.Sprintf("%#x", v.Index(i).Uint())
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return fmt.Sprint(v.Interface())
}
