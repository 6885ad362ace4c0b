package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/device/ic"
	"github.com/govmbus/govmbus/hosting/admin"
)

// adminOpts are the flags every admin command shares.
type adminOpts struct {
	socket string
	wait   time.Duration
	asJSON bool
}

// newAdminCmd is `vmbus admin --socket PATH ...`: the client of a host's
// admin API (vmbus host --admin PATH, package hosting/admin).
func newAdminCmd() *cobra.Command {
	o := &adminOpts{}
	cmd := groupCmd("admin --socket PATH guests|heartbeat|shutdown|time|kvp|capture ... [--wait D] [--json]",
		"Ask a running host about its guests and their integration components",
		`Calls the admin API of a host started with --admin PATH. Every command
takes --json (the API's answer as one JSON line) and --wait D (how long to
wait for the guest's answer, 30s by default). Exit 0 on success, 1 when the
guest refused, did not answer in time or the host could not be reached,
2 on bad usage or bad input (an unknown guest, a bad pool, a missing
argument).`,
		&cobra.Command{
			Use: "guests", Short: "List the connected guests, their channels and IC health",
			Args: exactArgs(0, "no arguments"),
			RunE: func(cmd *cobra.Command, _ []string) error {
				var gs []admin.Guest
				if err := o.do(cmd, "GET", "/v1/guests", nil, &gs); err != nil {
					return err
				}
				return o.print(cmd.OutOrStdout(), gs, func(w io.Writer) { admin.WriteGuests(w, gs) })
			},
		},
		&cobra.Command{
			Use: "heartbeat GUEST", Short: "Send one heartbeat now and print the guest's health",
			Args: exactArgs(1, "GUEST"),
			RunE: func(cmd *cobra.Command, args []string) error {
				var h ic.Health
				path, err := guestPath(args[0], "heartbeat")
				if err != nil {
					return err
				}
				if err := o.do(cmd, "POST", path, nil, &h); err != nil {
					return err
				}
				return o.print(cmd.OutOrStdout(), h, func(w io.Writer) {
					fmt.Fprintf(w, "guest %s heartbeat %s sequence %d answers %d misses %d\n", args[0], h.State, h.Sequence, h.Answers, h.Misses)
				})
			},
		},
		newAdminShutdownCmd(o),
		&cobra.Command{
			Use: "time GUEST", Short: "Send one time sample now and print it with the guest's offset",
			Args: exactArgs(1, "GUEST"),
			RunE: func(cmd *cobra.Command, args []string) error {
				var r admin.TimeResult
				path, err := guestPath(args[0], "time")
				if err != nil {
					return err
				}
				if err := o.do(cmd, "POST", path, nil, &r); err != nil {
					return err
				}
				return o.print(cmd.OutOrStdout(), r, func(w io.Writer) {
					fmt.Fprintf(w, "guest %s time %s parent %d round trip %v offset %v versions %s\n", args[0],
						r.Sample.Host.UTC().Format(time.RFC3339Nano), r.Sample.ParentTime, r.Sample.RoundTrip, time.Duration(r.Offset), r.Versions)
				})
			},
		},
		newAdminKVPCmd(o),
		newAdminCaptureCmd(o),
	)
	cmd.PersistentFlags().StringVar(&o.socket, "socket", "", "the host's admin socket (vmbus host --admin PATH)")
	cmd.PersistentFlags().DurationVar(&o.wait, "wait", admin.DefaultWait, "how long to wait for the guest's answer")
	cmd.PersistentFlags().BoolVar(&o.asJSON, "json", false, "print the answer as one JSON line")
	return cmd
}

func newAdminShutdownCmd(o *adminOpts) *cobra.Command {
	var reboot, hibernate, force bool
	var message string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "shutdown GUEST [--reboot|--hibernate] [--force] [--message M] [--timeout D]",
		Short: "Ask the guest to shut down, reboot or hibernate; wait for its answer",
		Args:  exactArgs(1, "GUEST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := admin.ShutdownRequest{Action: "shutdown", Force: force, Message: message, Timeout: admin.Duration(timeout)}
			switch {
			case reboot && hibernate:
				return usageErrorf("shutdown: --reboot or --hibernate, not both")
			case reboot:
				req.Action = "reboot"
			case hibernate:
				req.Action = "hibernate"
			}
			var r ic.ShutdownResult
			path, err := guestPath(args[0], "shutdown")
			if err != nil {
				return err
			}
			if err := o.do(cmd, "POST", path, req, &r); err != nil {
				return err
			}
			if err := o.print(cmd.OutOrStdout(), r, func(w io.Writer) {
				fmt.Fprintf(w, "guest %s %s: %s (status %#08x)\n", args[0], r.Action, okOr(r.OK, "refused"), r.Status)
			}); err != nil {
				return err
			}
			if !r.OK {
				return failuref("shutdown: the guest answered status %#08x", r.Status)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&reboot, "reboot", false, "ask for a reboot")
	cmd.Flags().BoolVar(&hibernate, "hibernate", false, "ask for a hibernation")
	cmd.Flags().BoolVar(&force, "force", false, "a forced shutdown")
	cmd.Flags().StringVar(&message, "message", "", "the message the guest is shown")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "the time the guest is given, told to it in whole seconds")
	return cmd
}

func newAdminKVPCmd(o *adminOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "kvp GUEST get|set|delete|list POOL [KEY [VALUE]]",
		Short: "Read and write the guest's KVP pools (0-4 or external, guest, auto, auto-external, auto-internal)",
		Args:  cobra.RangeArgs(0, 5),
		RunE: func(cmd *cobra.Command, args []string) error {
			want := map[string]int{"get": 4, "set": 5, "delete": 4, "list": 3}
			if len(args) < 2 {
				return usageErrorf("kvp: want GUEST get|set|delete|list POOL [KEY [VALUE]]")
			}
			n, ok := want[args[1]]
			if !ok {
				return usageErrorf("kvp: operation %q (want get, set, delete or list)", args[1])
			}
			if len(args) != n {
				return usageErrorf("kvp %s: want %d arguments, got %d", args[1], n, len(args))
			}
			if _, ok := ic.ParsePool(args[2]); !ok {
				return usageErrorf("kvp: pool %q (want 0-4 or external, guest, auto, auto-external, auto-internal)", args[2])
			}
			if n >= 4 {
				// The key is a segment of the request's path: an empty
				// one, or a dot segment, would name another path.
				if k := args[3]; k == "" || k == "." || k == ".." {
					return usageErrorf("kvp %s: key %q: the admin API cannot name it", args[1], k)
				}
			}
			path, err := guestPath(args[0], "kvp/"+url.PathEscape(args[2]))
			if err != nil {
				return err
			}
			var r admin.KVResult
			switch args[1] {
			case "list":
				err = o.do(cmd, "GET", path, nil, &r)
			case "get":
				err = o.do(cmd, "GET", path+"/"+url.PathEscape(args[3]), nil, &r)
			case "set":
				err = o.do(cmd, "PUT", path+"/"+url.PathEscape(args[3]), admin.KVSet{Value: args[4]}, &r)
			case "delete":
				err = o.do(cmd, "DELETE", path+"/"+url.PathEscape(args[3]), nil, &r)
			}
			if err != nil {
				return err
			}
			return o.print(cmd.OutOrStdout(), r, func(w io.Writer) {
				switch args[1] {
				case "list", "get":
					for _, kv := range r.Entries {
						fmt.Fprintf(w, "%s=%s\n", kv.Key, kv.Value)
					}
				case "set":
					fmt.Fprintf(w, "set %s in pool %s\n", args[3], r.Pool)
				case "delete":
					fmt.Fprintf(w, "deleted %s from pool %s\n", args[3], r.Pool)
				}
			})
		},
	}
}

// guestPath is the API's path of what under guest id; an id that is no
// number is bad usage.
func guestPath(id, what string) (string, error) {
	if _, err := strconv.ParseUint(id, 10, 64); err != nil {
		return "", usageErrorf("admin: guest %q is not a guest id (vmbus admin guests lists them)", id)
	}
	return "/v1/guests/" + id + "/" + what, nil
}

// do calls the API: an answer of bad input (400, 404) is exit 2, any
// other failure exit 1, each with the API's one-line reason.
func (o *adminOpts) do(cmd *cobra.Command, method, path string, body, out any) error {
	if err := notSocket("admin: --socket", o.socket); err != nil {
		return err
	}
	if o.socket == "" {
		return usageErrorf("admin: --socket is required")
	}
	if o.wait <= 0 || o.wait > admin.MaxWait {
		return usageErrorf("admin: --wait %v (want a duration in (0, %v])", o.wait, admin.MaxWait)
	}
	// The wait, and time to reach the host (a servicing's successor
	// listens anew meanwhile).
	ctx, cancel := context.WithTimeout(cmd.Context(), o.wait+10*time.Second)
	defer cancel()
	if method != "GET" || path != "/v1/guests" {
		path += "?wait=" + url.QueryEscape(o.wait.String())
	}
	err := admin.NewClient(o.socket).Do(ctx, method, path, body, out)
	var se *admin.StatusError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se) && (se.Code == http.StatusBadRequest || se.Code == http.StatusNotFound):
		return usageErrorf("admin: %s", se.Reason)
	case errors.As(err, &se):
		return failuref("admin: %s", se.Reason)
	default:
		return failuref("admin: %v", err)
	}
}

func (o *adminOpts) print(w io.Writer, v any, text func(io.Writer)) error {
	if o.asJSON {
		return printJSON(w, v)
	}
	text(w)
	return nil
}

func okOr(ok bool, no string) string {
	if ok {
		return "ok"
	}
	return no
}
