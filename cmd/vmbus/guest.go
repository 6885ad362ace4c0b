package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/protocol"
)

// newGuestCmd is `vmbus guest --socket PATH <subcommand>`: guest-side tools.
func newGuestCmd() *cobra.Command {
	var socket string
	cmd := groupCmd("guest --socket PATH <subcommand>", "Guest-side tools: connect to a host and use its channels",
		"Connects to a host daemon (vmbus host) as a VMBus guest.",
		newGuestListCmd(&socket))
	cmd.PersistentFlags().StringVar(&socket, "socket", "", "Unix socket path of the host")
	return cmd
}

// offerJSON is one line of `vmbus guest list --json`.
type offerJSON struct {
	ChannelID         uint32              `json:"channel_id"`
	ConnectionID      uint32              `json:"connection_id"`
	InterfaceType     protocol.GUID       `json:"interface_type"`
	InterfaceInstance protocol.GUID       `json:"interface_instance"`
	SubchannelIndex   uint16              `json:"subchannel_index"`
	Flags             protocol.OfferFlags `json:"flags"`
}

func newGuestListCmd(socket *string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--json]",
		Short: "Print the host's offers",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if *socket == "" {
				return usageErrorf("guest: --socket is required")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			cl, err := guest.Dial(ctx, *socket, guest.Config{MemorySize: 1 << 20})
			if err != nil {
				return failuref("guest: cannot reach host at %s: %v", *socket, err)
			}
			defer cl.Close()
			offers, err := cl.RequestOffers(ctx)
			if err != nil {
				return failuref("guest: %v", err)
			}
			out := make([]offerJSON, 0, len(offers))
			for _, o := range offers {
				out = append(out, offerJSON{o.ChannelID, o.ConnectionID, o.InterfaceType, o.InterfaceInstance, o.SubchannelIndex, o.Flags})
			}
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			for _, o := range out {
				fmt.Fprintf(w, "channel %d connection %#x type %v instance %v subchannel %d flags %v\n",
					o.ChannelID, o.ConnectionID, o.InterfaceType, o.InterfaceInstance, o.SubchannelIndex, o.Flags)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}
