package main

import (
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/internal/chaos"
)

// newGuestChaosCmd is `vmbus guest --socket PATH chaos`: a hostile guest
// (package internal/chaos) against a running host.
func newGuestChaosCmd(socket *string) *cobra.Command {
	var (
		seed     uint64
		duration time.Duration
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "chaos --seed N --duration D [--json]",
		Short: "Misbehave against the host as a malicious guest would, and report what the host did",
		Long: `Connect to the host again and again for --duration and misbehave: corrupt
the rings of opened channels while the host reads them, send malformed,
truncated, unknown and out-of-order control messages and transport frames,
build bogus GPADLs, open with bad parameters, flood signals, stop reading,
leave with everything open. Every choice comes from a PRNG seeded with
--seed. The report counts, per kind of action, what the host did
(ignored it, refused it with a status, rescinded, disconnected the guest).
Exit status 0 when the run reached its end (whether the host survived is
for the caller to judge), 1 if the host could not be reached at all.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if *socket == "" {
				return usageErrorf("guest: --socket is required")
			}
			if duration <= 0 {
				return usageErrorf("chaos: --duration must be positive")
			}
			rep, err := chaos.Run(cmd.Context(), chaos.Config{Socket: *socket, Seed: seed, Duration: duration})
			if errors.Is(err, chaos.ErrConnect) {
				return failuref("%v", err)
			}
			if err != nil {
				return usageError(err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), rep)
			}
			return rep.WriteText(cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&seed, "seed", 1, "seed of the PRNG that decides every action and value")
	f.DurationVar(&duration, "duration", 10*time.Second, "misbehave this long")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}
