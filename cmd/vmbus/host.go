package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/capture"
	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/hosting/admin"
	"github.com/govmbus/govmbus/hosting/metrics"
	"github.com/govmbus/govmbus/hosting/stdkinds"
	"github.com/govmbus/govmbus/internal/hostchaos"
	"github.com/govmbus/govmbus/internal/sockpath"
	"github.com/govmbus/govmbus/servicing"
	"github.com/govmbus/govmbus/servicing/stopsignal"
)

// newHostCmd is `vmbus host --socket PATH [--device echo|blk=FILE ...]`:
// the host daemon. It runs until SIGINT or SIGTERM, then rescinds every
// channel, waits briefly for the guests to release them and removes the
// socket. SIGHUP services it: it saves every channel and its bus state and
// re-executes itself in place, handing over its descriptors; the successor
// restores and serves on, and the guests notice only the pause.
func newHostCmd() *cobra.Command {
	var socket, stateFile, logFormat, metricsAddr, servicingMode, adminPath string
	var capt hosting.CaptureConfig
	var stall channel.StallConfig
	var poll time.Duration
	var rtBlackout, stateKinds, asJSON, chaosOn bool
	var hc hostchaos.Config
	var devices, relays, connects []string
	cmd := &cobra.Command{
		Use:   "host --socket PATH [--device echo|blk=FILE|blk-ro=FILE|heartbeat|shutdown|timesync|kvp|ic ...] [--admin PATH] [--state-file PATH] [--servicing exec|spawn] [--rt-blackout] [--capture FILE [--capture-snaplen N] [--capture-max-bytes N]] [--unstick] [--stall-after D] [--poll D] [--log-format text|json] [--chaos --seed N [--chaos-duration D] [--json]] | host --state-kinds [--json]",
		Short: "Run the VMBus host daemon, offering devices to guests",
		Long: `Run the VMBus host daemon. Every guest that connects is offered each
--device as its own channel, served through the KMCL channel API:
  echo          answers every packet (device/echo); repeat it for more
                echo channels (64 at most)
  blk=FILE      serves FILE as a disk (device/blk, docs/BLK.md)
  blk-ro=FILE   serves FILE as a read-only disk
  heartbeat, shutdown, timesync, kvp
                Hyper-V's integration components (device/ic, docs/ICS.md)
  ic            the four integration components
--admin PATH serves the admin API (HTTP+JSON, "vmbus admin") on a Unix
socket of mode 0600 that refuses other users; each successor listens on it
anew.
SIGHUP services the host: every channel is paused and saved with the bus
state, and the daemon re-executes its binary in place (same pid), handing
over guest memory, sockets and eventfds; the successor restores and logs
"servicing complete" with the blackout (a servicing that fails after the
save restores in the old image instead and logs "servicing rolled back").
With --servicing spawn the
successor instead starts up as a new process while the channels still run,
and only then does the host pause, save and hand over (over a socket): a
shorter blackout. The command then runs as a supervisor that keeps its pid,
passes SIGHUP, SIGINT and SIGTERM to the current host process and exits
with its status. --rt-blackout runs each blackout at real-time priority
(SCHED_FIFO; needs CAP_SYS_NICE), so that woken guests do not preempt the
host until every channel runs again; with 64 channels under load,
--servicing spawn --rt-blackout keeps the blackout within 20 ms (README,
Servicing). The echo channels take successive instances
00000000-0000-0000-0000-000000000001, ...0002 and so on, in the order
given; a guest tells them apart by instance. --state-file keeps the last
servicing's saved state for "vmbus state inspect". --capture FILE records the
bus (pcapng, docs/CAPTURE.md), each successor after. SIGINT and SIGTERM stop
(a servicing that has not handed over yet gives up first).
--chaos makes the host hostile (docs/HOSTILE_HOST.md): for --chaos-duration
(0: until stopped) it misbehaves towards its guests as --seed decides, then
prints what it tried and what the guests did (--json: one object) and exits.
Every second each channel is checked for a stall (docs/TOP.md), logged when
one starts and ends; --unstick signals a lost signal again, and only that.

Before it pauses anything, a servicing asks the successor which saved
states it reads (docs/SAVED_STATE.md, Compatibility): --state-kinds prints
this build's answer (the format version, then each record kind it reads)
and exits. A successor too old to answer is taken to read the kinds of the
first release; the host then waits for restartable packets (a blk FLUSH)
in its pause instead of saving them, and refuses the servicing ("servicing
refused") if its state could not be read at all.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if stateKinds {
				return printStateKinds(cmd.OutOrStdout(), asJSON)
			}
			// SIGINT and SIGTERM are caught first of all: in the image an
			// exec servicing starts, one that comes before would end it
			// by Go's default action instead of stopping it in order.
			ctx, stop := stopsignal.NotifyContext(context.Background())
			defer stop()
			if asJSON && !chaosOn {
				return usageErrorf("host: --json goes with --state-kinds or --chaos")
			}
			if stall.After <= 0 {
				return usageErrorf("host: --stall-after %v: want more than 0", stall.After)
			}
			if metricsAddr != "" {
				if _, port, err := net.SplitHostPort(metricsAddr); err != nil || !validPort(port) {
					return usageErrorf("host: --metrics %q: want HOST:PORT or :PORT", metricsAddr)
				}
			}
			if capt.SnapLen < 0 || capt.SnapLen > capture.MaxSnapLen {
				return usageErrorf("host: --capture-snaplen %d: want 0 to %d", capt.SnapLen, capture.MaxSnapLen)
			}
			if capt.MaxBytes < 0 {
				return usageErrorf("host: --capture-max-bytes %d: want 0 (no limit) or more", capt.MaxBytes)
			}
			if f := cmd.Flags(); capt.Path == "" && (f.Changed("capture-snaplen") || f.Changed("capture-max-bytes")) {
				return usageErrorf("host: --capture-snaplen and --capture-max-bytes go with --capture")
			}
			if f := cmd.Flags(); !chaosOn && (f.Changed("seed") || f.Changed("chaos-duration")) {
				return usageErrorf("host: --seed and --chaos-duration go with --chaos")
			}
			if hc.Duration < 0 {
				return usageErrorf("host: --chaos-duration %v: want 0 (until stopped) or more", hc.Duration)
			}
			// Adopt a predecessor's descriptors before anything else, so
			// none leaks or is mistaken for another.
			inh, inherited, ierr := servicing.Inherited()
			pred, spawned, serr := servicing.Spawned()
			if ierr == nil && serr != nil {
				ierr = serr
			}
			if ierr == nil && inherited && spawned {
				ierr = errors.New("servicing: both an inherited and a spawned handover")
			}
			closeInherited := func() {
				for _, fd := range inh.FDs {
					syscall.Close(fd)
				}
			}
			if socket == "" {
				closeInherited()
				return usageErrorf("host: --socket is required")
			}
			var log *slog.Logger
			switch logFormat {
			case "text":
				log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			case "json":
				log = slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), nil))
			default:
				closeInherited()
				return usageErrorf("host: --log-format %q (want text or json)", logFormat)
			}
			mode := hosting.Exec
			switch servicingMode {
			case "exec":
			case "spawn":
				mode = hosting.Spawn
			default:
				closeInherited()
				return usageErrorf("host: --servicing %q (want exec or spawn)", servicingMode)
			}
			if ierr != nil {
				return failuref("host: %v", ierr)
			}
			sup, err := servicing.SupervisorFromEnv()
			if err != nil {
				closeInherited()
				return failuref("%v", err)
			}
			if mode == hosting.Spawn && sup == nil && !spawned && !inherited {
				// Started by a user: keep this process id, and run the
				// host in a worker that servicings replace.
				status, err := servicing.Supervise(os.Args)
				if err != nil {
					return failuref("host: %v", err)
				}
				if status > 128 {
					// The host process died of a signal (a worker
					// killed outright): it logged nothing of it.
					log.Error("host process killed", "signal", syscall.Signal(status-128).String(), "exit", status)
				}
				os.Exit(status)
			}
			if adminPath != "" && !inherited && !spawned {
				// Before the bus listens: a host refused for its admin
				// path takes no guest in the meantime.
				if err := sockpath.Claim(adminPath, "unix"); err != nil {
					closeInherited()
					if errors.Is(err, sockpath.ErrNotSocket) {
						return usageErrorf("host: admin: %v", err)
					}
					return failuref("host: admin: %v", err)
				}
			}
			// SIGHUP is caught from the start: a servicing asked for
			// early waits until the daemon serves.
			hup := hosting.CatchHangup()
			defer signal.Stop(hup)
			hm := metrics.New(log)
			d, err := hosting.New(hosting.Config{
				Socket: hostchaos.Upstream(socket, chaosOn), Kinds: stdkinds.Registry(), Devices: devices, Logger: log,
				Events: hm.Observe, StateFile: stateFile, Servicing: mode, RTBlackout: rtBlackout,
				Supervisor: sup, Hangup: hup, Capture: capt, Stall: stall, Relays: relays, Connects: connects, Poll: poll,
			})
			if err != nil {
				closeInherited()
				if errors.Is(err, hosting.ErrDevice) || errors.Is(err, hosting.ErrConfig) {
					return usageErrorf("host: %v", err)
				}
				return failuref("host: %v", err)
			}
			hm.SetDaemon(d)
			// A worker whose supervisor was killed outright stops as
			// on SIGTERM: nobody could signal it any more.
			supGone, stopWatch := sup.Watch()
			defer stopWatch()
			switch {
			case spawned:
				// A successor spawned by a servicing: its start-up is
				// done; the predecessor pauses and hands over now.
				if _, err := d.AdoptSpawned(pred); err != nil {
					return failuref("%v", err)
				}
			case inherited:
				if err := d.Adopt(inh); err != nil {
					return failuref("%v", err)
				}
			default:
				if err := d.Serve(); err != nil {
					// A directory given for a file (--capture) is bad input too.
					if errors.Is(err, sockpath.ErrNotSocket) || errors.Is(err, hosting.ErrConfig) || errors.Is(err, syscall.EISDIR) {
						return usageErrorf("%v", err)
					}
					return failuref("%v", err)
				}
			}
			stopMetrics, err := hm.Serve(metricsAddr, spawned)
			if err != nil && !inherited && !spawned {
				d.Close()
				return failuref("host: --metrics: %v", err)
			}
			defer stopMetrics()
			hcr := hostchaos.Start(ctx, chaosOn, socket, hc, cmd.OutOrStdout(), asJSON)
			defer hcr.Stop()
			if adminPath != "" {
				// Listened anew by every successor (hosting/admin).
				// It takes the daemon's events (a servicing pauses it).
				adm, err := admin.Listen(admin.Config{Path: adminPath, Successor: inherited || spawned, Source: d, Logger: log, Servicings: hm.Servicings})
				switch {
				case err == nil:
					defer adm.Close()
				case inherited || spawned:
					// A successor serves its guests on without it.
					log.Error("admin API not served", "path", adminPath, "err", err)
				default:
					d.Close()
					if errors.Is(err, sockpath.ErrNotSocket) {
						return usageErrorf("host: %v", err)
					}
					return failuref("host: %v", err)
				}
			}
			for {
				select {
				case <-ctx.Done():
				case <-supGone:
					log.Warn("supervisor gone: stopping")
				case <-hup:
					// A stop asked for during the servicing abandons it
					// unless the handover is done: the loop then stops.
					if err := d.ServiceContext(ctx); err != nil {
						return failuref("%v", err)
					}
					continue
				case err := <-d.Done():
					d.Close()
					return failuref("host: %v", err)
				case err := <-hcr.Done():
					if err != nil {
						d.Close()
						return failuref("host: %v", err)
					}
				}
				break
			}
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := d.Shutdown(sctx); err != nil {
				log.Warn("shutdown", "err", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", "", "Unix socket path to listen on")
	cmd.Flags().StringArrayVar(&devices, "device", nil, "device to offer: echo (each one more channel), blk=FILE, blk-ro=FILE, heartbeat, shutdown, timesync, kvp, ic (the four); repeatable, one device each (a FILE may hold commas)")
	cmd.Flags().StringArrayVar(&connects, "hvsock-connect", nil, "relay each connection to the local Unix socket PATH into an hvsock connection to SERVICE on the guest connected longest: unix:PATH=SERVICE; repeatable")
	cmd.Flags().StringArrayVar(&relays, "hvsock-relay", nil, "relay the guests' hvsock connections to SERVICE (a GUID or a vsock port) to a local socket: SERVICE=unix:PATH or SERVICE=tcp:ADDR; repeatable")
	cmd.Flags().StringVar(&adminPath, "admin", "", "serve the admin API (vmbus admin) on this Unix socket")
	cmd.Flags().StringVar(&stateFile, "state-file", "", "keep the last servicing's saved state in this file")
	cmd.Flags().StringVar(&logFormat, "log-format", "text", "log format: text or json")
	cmd.Flags().BoolVar(&rtBlackout, "rt-blackout", false, "run each servicing's blackout at real-time priority (SCHED_FIFO 1; needs CAP_SYS_NICE)")
	cmd.Flags().StringVar(&servicingMode, "servicing", "exec", "how SIGHUP services the host: exec (re-execute in place, same pid) or spawn (start the successor first, then hand over)")
	cmd.Flags().BoolVar(&stateKinds, "state-kinds", false, "print the saved-state format and record kinds this build reads (what a servicing asks its successor), and exit")
	cmd.Flags().BoolVar(&asJSON, "json", false, "with --state-kinds: print one JSON object")
	cmd.Flags().StringVar(&capt.Path, "capture", "", "record the bus to this pcapng file (docs/CAPTURE.md); a servicing's successor appends")
	cmd.Flags().IntVar(&capt.SnapLen, "capture-snaplen", 0, "bytes kept of each captured ring packet (0: 65536; control messages and events are kept whole)")
	cmd.Flags().Int64Var(&capt.MaxBytes, "capture-max-bytes", 0, "stop capturing before the file passes this size (0: no limit)")
	cmd.Flags().BoolVar(&stall.Unstick, "unstick", false, "signal a channel again when its stall check finds a lost signal (never for another stall)")
	cmd.Flags().DurationVar(&poll, "poll", 0, "after each batch, poll the devices' rings this long before sleeping (adaptive; 0: never)")
	cmd.Flags().DurationVar(&stall.After, "stall-after", channel.DefaultStallAfter, "how long a channel must make no progress before its stall check names it")
	cmd.Flags().BoolVar(&chaosOn, "chaos", false, "misbehave towards the guests as a hostile host would (docs/HOSTILE_HOST.md)")
	cmd.Flags().Uint64Var(&hc.Seed, "seed", 1, "with --chaos: the seed of every choice")
	cmd.Flags().DurationVar(&hc.Duration, "chaos-duration", 0, "with --chaos: misbehave this long, then report and exit (0: until stopped)")
	cmd.Flags().StringVar(&metricsAddr, "metrics", "", "serve Prometheus /metrics and /debug/pprof/ on this TCP address (e.g. 127.0.0.1:9464)")
	return cmd
}

// maxEchoChannels bounds the echo devices of a host (and the channels of
// vmbus soak's guests).
const maxEchoChannels = stdkinds.MaxEcho

// validPort says whether port is a TCP port number or a service name.
func validPort(port string) bool {
	if n, err := strconv.Atoi(port); err == nil {
		return n >= 0 && n <= 65535
	}
	_, err := net.LookupPort("tcp", port)
	return err == nil
}
