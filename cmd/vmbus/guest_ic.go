package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/device/ic"
)

// newGuestICCmd is `vmbus guest --socket PATH ic`: the guest's
// integration components, answering the host as a Linux guest does until
// interrupted.
func newGuestICCmd(socket *string) *cobra.Command {
	var (
		kvpDir, onShutdown string
		asJSON             bool
	)
	cmd := &cobra.Command{
		Use:   "ic [--kvp-dir DIR] [--on-shutdown CMD] [--json]",
		Short: "Answer the host's heartbeat, shutdown, time sync and KVP requests; one line per event",
		Long: `Opens the four integration components as the host offers them and answers
every request until SIGINT or SIGTERM (exit 0), or until the host goes
away (exit 1). A shutdown request runs --on-shutdown
(sh -c CMD, with VMBUS_SHUTDOWN_ACTION and VMBUS_SHUTDOWN_MESSAGE set; the
default only logs) and answers with its status. Time messages adjust a
reported offset, never the clock. KVP pools live in files under --kvp-dir.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cl, err := dialGuest(ctx, *socket)
			if err != nil {
				return err
			}
			defer cl.Close()
			var mu sync.Mutex
			w := cmd.OutOrStdout()
			cfg := ic.ClientConfig{KVPDir: kvpDir, OnEvent: func(e ic.Event) {
				mu.Lock()
				defer mu.Unlock()
				if asJSON {
					json.NewEncoder(w).Encode(e) //nolint:errcheck // stdout
					return
				}
				line := fmt.Sprintf("%s %s %s", e.Service, e.Kind, e.Detail)
				if e.Status != "" {
					line += " status " + e.Status
				}
				if e.Kind == "time" {
					line += fmt.Sprintf(" offset %v", e.Offset)
				}
				fmt.Fprintln(w, line)
			}}
			if onShutdown != "" {
				cfg.OnShutdown = func(ctx context.Context, s *ic.Shutdown) error {
					c := exec.CommandContext(ctx, "sh", "-c", onShutdown)
					c.Env = append(os.Environ(), "VMBUS_SHUTDOWN_ACTION="+s.Action(), "VMBUS_SHUTDOWN_MESSAGE="+s.Message)
					c.Stdout, c.Stderr = os.Stderr, os.Stderr
					return c.Run()
				}
			}
			c, err := ic.OpenClient(cl, []ic.Service{ic.ServiceHeartbeat, ic.ServiceShutdown, ic.ServiceTimeSync, ic.ServiceKVP}, cfg)
			if err != nil {
				return failuref("guest ic: %v", err)
			}
			defer c.Close()
			select {
			case <-ctx.Done():
				return nil
			case <-cl.Done():
				return failuref("guest ic: the host went away: %v", cl.Err())
			}
		},
	}
	cmd.Flags().StringVar(&kvpDir, "kvp-dir", "", "directory of the KVP pool files (default: pools in memory)")
	cmd.Flags().StringVar(&onShutdown, "on-shutdown", "", "command run (sh -c) on a shutdown, reboot or hibernate request")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per event")
	return cmd
}
