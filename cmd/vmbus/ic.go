package main

import (
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/internal/ringtext"
)

// newICCmd is `vmbus ic <subcommand>`: the integration components' tools.
func newICCmd() *cobra.Command {
	return groupCmd("ic <subcommand>", "Hyper-V integration components: decode their messages",
		"Tools for the integration components (heartbeat, shutdown, time sync, KVP); docs/ICS.md.",
		newICDecodeCmd())
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
			d, err := ringtext.DecodeIC(b)
			if err != nil {
				return usageErrorf("ic decode: %v", err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(w).Encode(d)
			}
			return d.WriteText(w, "")
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}
