package main

import (
	"encoding/json"
	"errors"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/internal/ringtext"
	"github.com/govmbus/govmbus/ring"
)

func newRingCmd() *cobra.Command {
	return groupCmd("ring",
		"Create, write, read and dump a VMBus ring held in a file",
		`A ring file is one direction of a VMBus ring exactly as it lies in guest
memory: a 4096-byte control page followed by the data area. Any process
that maps the file (this command, a test, another implementation) sees the
same bytes.`,
		newRingInitCmd(), newRingWriteCmd(), newRingReadCmd(), newRingDumpCmd())
}

func newRingInitCmd() *cobra.Command {
	var dataSize int
	cmd := &cobra.Command{
		Use:   "init --data-size N FILE",
		Short: "Create a ring file: a zeroed 4096-byte control page and N data bytes",
		Args:  exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("data-size") {
				return usageErrorf("--data-size is required")
			}
			if err := ring.CreateFile(args[0], dataSize); err != nil {
				return usageError(err)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&dataSize, "data-size", 0, "data bytes after the control page (a multiple of 4096)")
	return cmd
}

func newRingWriteCmd() *cobra.Command {
	var s ringtext.WriteSpec
	cmd := &cobra.Command{
		Use:   "write FILE --type inband|completion|gpa-direct|transfer-pages --txid N [flags]",
		Short: "Append one packet to a ring file, changing no control field but the write index",
		Long: `Append one packet to a ring file made by anyone, then publish the write
index. No other control field changes. Exit status 1 with "ring full" when
the packet does not fit.

--range PFN[,PFN...]:OFFSET:LEN gives one GPA range of a gpa-direct packet:
LEN bytes starting OFFSET bytes into the first page. With a single PFN, a
range spanning several pages uses the pages that follow it. Numbers may be
decimal or 0x-prefixed hex.`,
		Args: exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("type") || !cmd.Flags().Changed("txid") {
				return usageErrorf("--type and --txid are required")
			}
			s.HasTransferSet = cmd.Flags().Changed("transfer-set")
			p, payload, err := s.Packet()
			if err != nil {
				return usageError(err)
			}
			if err := ringtext.AppendFile(args[0], p, payload); err != nil {
				if errors.Is(err, ringtext.ErrFull) {
					return failuref("%v", err)
				}
				return usageError(err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&s.Type, "type", "", "packet type: inband, completion, gpa-direct or transfer-pages")
	f.Uint64Var(&s.TransactionID, "txid", 0, "transaction id")
	f.BoolVar(&s.CompletionRequested, "completion-requested", false, "set the completion-requested flag")
	f.StringVar(&s.PayloadHex, "payload", "", "payload bytes in hex")
	f.StringArrayVar(&s.Ranges, "range", nil, "GPA range PFN[,PFN...]:OFFSET:LEN (repeatable)")
	f.Uint16Var(&s.TransferSet, "transfer-set", 0, "transfer page set id")
	f.StringArrayVar(&s.TransferRanges, "transfer-range", nil, "transfer range OFFSET:LEN (repeatable)")
	return cmd
}

func newRingReadCmd() *cobra.Command {
	var maxPackets int
	cmd := &cobra.Command{
		Use:   "read FILE [--max N]",
		Short: "Consume packets, print one JSON object per line, then publish the read index",
		Long: `Consume unread packets (all of them, or at most --max), print each as one
JSON object per line, then publish the new read index. The payload is hex,
padding included. If the ring is corrupt, the packets before the damage are
printed and consumed, and the command exits 2 naming the offset and rule.`,
		Args: exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if maxPackets < 0 {
				return usageErrorf("--max %d is negative", maxPackets)
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			var werr error
			err := ringtext.ConsumeFile(args[0], maxPackets, func(p ringtext.Packet) error {
				werr = enc.Encode(p)
				return werr
			})
			switch {
			case werr != nil:
				return werr
			case err != nil:
				return usageError(err)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&maxPackets, "max", 0, "consume at most N packets (0: all)")
	return cmd
}

func newRingDumpCmd() *cobra.Command {
	var asJSON, decodeIC bool
	cmd := &cobra.Command{
		Use:   "dump FILE [--json] [--ic]",
		Short: "Show the control page and every unread packet, consuming nothing",
		Long: `Show the control page fields and every unread packet without consuming
anything (the file is mapped read-only). If the ring is corrupt, what was
readable is shown and the command exits 2 naming the offset and rule.

--ic decodes the payload of each in-band packet as an integration-component
message, as "ic decode" does: its lines under the packet, or an "ic" object
in the packet's JSON. A payload that is not one shows why ("ic: REASON",
or "ic_error" in JSON); that is not an error of the ring.`,
		Args: exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			rf, err := ring.OpenFile(args[0], false)
			if err != nil {
				return usageError(err)
			}
			defer rf.Close()
			ctl, err := ring.Inspect(rf.Region())
			if err != nil {
				return usageError(err)
			}
			d, rerr := ringtext.NewDump(ctl, rf.Region())
			if decodeIC {
				d.DecodeIC()
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(d); err != nil {
					return err
				}
			} else if err := d.WriteText(out); err != nil {
				return err
			}
			if rerr != nil {
				return usageError(rerr)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	cmd.Flags().BoolVar(&decodeIC, "ic", false, "decode in-band payloads as integration-component messages")
	return cmd
}
