package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/device/blk"
	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/servicing"
	"github.com/govmbus/govmbus/transport"
)

// newHostCmd is `vmbus host --socket PATH [--device echo|blk=FILE ...]`:
// the host daemon. It runs until SIGINT or SIGTERM, then rescinds every
// channel, waits briefly for the guests to release them and removes the
// socket. SIGHUP services it: it saves every channel and its bus state and
// re-executes itself in place, handing over its descriptors; the successor
// restores and serves on, and the guests notice only the pause.
func newHostCmd() *cobra.Command {
	var socket, stateFile, logFormat, metricsAddr, servicingMode string
	var rtBlackout, stateKinds, asJSON bool
	var devices []string
	cmd := &cobra.Command{
		Use:   "host --socket PATH [--device echo|blk=FILE|blk-ro=FILE ...] [--state-file PATH] [--servicing exec|spawn] [--rt-blackout] [--log-format text|json] | host --state-kinds [--json]",
		Short: "Run the VMBus host daemon, offering devices to guests",
		Long: `Run the VMBus host daemon. Every guest that connects is offered each
--device as its own channel, served through the KMCL channel API:
  echo          answers every packet (device/echo); repeat it for more
                echo channels (64 at most)
  blk=FILE      serves FILE as a disk (device/blk, docs/BLK.md)
  blk-ro=FILE   serves FILE as a read-only disk
SIGHUP services the host: every channel is paused and saved with the bus
state, and the daemon re-executes its binary in place (same pid), handing
over guest memory, sockets and eventfds; the successor restores and logs
"servicing complete" with the blackout. With --servicing spawn the
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
servicing's saved state for "vmbus state inspect". SIGINT and SIGTERM stop.

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
			if asJSON {
				return usageErrorf("host: --json goes with --state-kinds")
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
			if socket == "" {
				return usageErrorf("host: --socket is required")
			}
			var log *slog.Logger
			switch logFormat {
			case "text":
				log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			case "json":
				log = slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), nil))
			default:
				return usageErrorf("host: --log-format %q (want text or json)", logFormat)
			}
			if servicingMode != "exec" && servicingMode != "spawn" {
				return usageErrorf("host: --servicing %q (want exec or spawn)", servicingMode)
			}
			if ierr != nil {
				return failuref("host: %v", ierr)
			}
			sup, err := servicing.SupervisorFromEnv()
			if err != nil {
				return failuref("%v", err)
			}
			if servicingMode == "spawn" && sup == nil && !spawned && !inherited {
				// Started by a user: keep this process id, and run the
				// host in a worker that servicings replace.
				status, err := servicing.Supervise(os.Args)
				if err != nil {
					return failuref("host: %v", err)
				}
				os.Exit(status)
			}
			devs, err := parseDevices(devices, log)
			if err != nil {
				for _, fd := range inh.FDs {
					syscall.Close(fd)
				}
				return err
			}
			defer devs.close()
			d := &daemon{socket: socket, stateFile: stateFile, devs: devs, log: log, spawn: servicingMode == "spawn", sup: sup, spawned: spawned, rt: rtBlackout}
			// SIGHUP is caught from the start: a servicing asked for
			// early waits until the daemon serves.
			hup := catchHUP()
			defer signal.Stop(hup)
			d.hup = hup
			// SIGINT and SIGTERM too: one that comes right after a
			// servicing's restore must stop the daemon cleanly, not
			// end it by Go's default action.
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if spawned {
				// A successor spawned by a servicing: its start-up is
				// done; the predecessor pauses and hands over now.
				if inh.Paused, err = d.adoptSpawned(pred); err != nil {
					return failuref("%v", err)
				}
				inherited = true
			} else if inherited {
				if err := d.adopt(inh.State, inh.FDs, inh.Paused, true); err != nil {
					return failuref("%v", err)
				}
			} else {
				l, err := transport.Listen(socket)
				if err != nil {
					return failuref("host: %v", err)
				}
				d.h = host.New(d.config())
				d.serve(l)
				log.Info("host listening", "socket", socket, "devices", len(devs.specs))
				if err := d.sup.Announce(); err != nil {
					return failuref("host: %v", err)
				}
			}
			defer d.startMetrics(metricsAddr, inherited, inh.Paused)()
			for {
				select {
				case <-ctx.Done():
				case <-hup:
					if err := d.service(); err != nil {
						return failuref("%v", err)
					}
					continue
				case err := <-d.served:
					d.h.Close()
					devs.wait()
					return failuref("host: %v", err)
				}
				break
			}
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := d.h.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				log.Warn("shutdown", "err", err)
			}
			<-d.served
			devs.wait()
			os.Remove(socket) //nolint:errcheck // Serve's listener close removes it already
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", "", "Unix socket path to listen on")
	cmd.Flags().StringSliceVar(&devices, "device", nil, "device to offer: echo (each one more channel), blk=FILE, blk-ro=FILE; repeatable")
	cmd.Flags().StringVar(&stateFile, "state-file", "", "keep the last servicing's saved state in this file")
	cmd.Flags().StringVar(&logFormat, "log-format", "text", "log format: text or json")
	cmd.Flags().BoolVar(&rtBlackout, "rt-blackout", false, "run each servicing's blackout at real-time priority (SCHED_FIFO 1; needs CAP_SYS_NICE)")
	cmd.Flags().StringVar(&servicingMode, "servicing", "exec", "how SIGHUP services the host: exec (re-execute in place, same pid) or spawn (start the successor first, then hand over)")
	cmd.Flags().BoolVar(&stateKinds, "state-kinds", false, "print the saved-state format and record kinds this build reads (what a servicing asks its successor), and exit")
	cmd.Flags().BoolVar(&asJSON, "json", false, "with --state-kinds: print one JSON object")
	cmd.Flags().StringVar(&metricsAddr, "metrics", "", "serve Prometheus /metrics and /debug/pprof/ on this TCP address (e.g. 127.0.0.1:9464)")
	return cmd
}

// deviceSpec is one --device: one channel offered to each guest.
type deviceSpec struct {
	kind     string        // "echo" or "blk"
	instance protocol.GUID // echo: its own, so that a guest can tell the channels apart
	file     *os.File
	size     int64
	ro       bool
}

// maxEchoChannels bounds the echo devices: each costs every guest a pair
// of rings and the host a server per guest.
const maxEchoChannels = 64

// echoInstance is the instance of the n-th echo channel, counting from 1:
// 00000000-0000-0000-0000-00000000000n. The first is echo.InterfaceInstance,
// so a host with one echo device offers what it always did.
func echoInstance(n int) protocol.GUID {
	var g protocol.GUID
	binary.BigEndian.PutUint32(g[12:], uint32(n))
	return g
}

// hostDevices offers the --device list to each guest, keeps each guest's
// servers for servicing and closes them when the guest leaves.
type hostDevices struct {
	specs  []deviceSpec
	values []string // the --device values, in order: what a successor must be given too
	log    *slog.Logger
	wg     sync.WaitGroup

	mu     sync.Mutex
	guests map[*host.Guest][]vsp
}

// vsp is what the daemon needs of a device server.
type vsp interface {
	StopIndications()
	Pause() error
	Start() error
	Save() ([][]byte, error)
	Close() error
}

// guestServers is one guest and its servers, one per device (nil where
// the device could not be offered).
type guestServers struct {
	g       *host.Guest
	servers []vsp
}

// parseDevices checks the --device values and opens the disk files; a bad
// value or an unopenable file is bad input (exit 2).
func parseDevices(values []string, log *slog.Logger) (*hostDevices, error) {
	d := &hostDevices{log: log, values: values, guests: make(map[*host.Guest][]vsp)}
	blks, echoes := 0, 0
	for _, v := range values {
		kind, file, hasFile := strings.Cut(v, "=")
		switch {
		case v == "echo":
			// One spec per value: the saved state of a servicing
			// holds each guest's channels by --device.
			if echoes++; echoes > maxEchoChannels {
				d.close()
				return nil, usageErrorf("host: %d echo devices at most", maxEchoChannels)
			}
			d.specs = append(d.specs, deviceSpec{kind: "echo", instance: echoInstance(echoes)})
			continue
		case (kind == "blk" || kind == "blk-ro") && hasFile && file != "":
		default:
			d.close()
			return nil, usageErrorf("host: unknown device %q (want echo, blk=FILE or blk-ro=FILE)", v)
		}
		if blks++; blks > 1 {
			d.close()
			return nil, usageErrorf("host: one blk device at most")
		}
		ro := kind == "blk-ro"
		flag := os.O_RDWR
		if ro {
			flag = os.O_RDONLY
		}
		f, err := os.OpenFile(file, flag, 0)
		if err == nil {
			var st os.FileInfo
			if st, err = f.Stat(); err == nil && !st.Mode().IsRegular() {
				err = fmt.Errorf("%s is not a regular file", file)
			}
			if err == nil {
				d.specs = append(d.specs, deviceSpec{kind: "blk", file: f, size: st.Size(), ro: ro})
				continue
			}
			f.Close()
		}
		d.close()
		return nil, usageErrorf("host: device %s: %v", v, err)
	}
	return d, nil
}

// offer is host.Config.OnGuest: one server per device for guest g, closed
// once g is gone.
func (d *hostDevices) offer(g *host.Guest) {
	servers := make([]vsp, len(d.specs))
	for j, s := range d.specs {
		srv, err := d.newServer(g, j)
		if err != nil {
			d.log.Warn("offer", "guest", g.ID(), "device", s.kind, "err", err)
			continue
		}
		servers[j] = srv
	}
	d.track(g, servers)
}

// newServer offers device j to guest g.
func (d *hostDevices) newServer(g *host.Guest, j int) (vsp, error) {
	s := d.specs[j]
	if s.kind == "echo" {
		return echo.NewServer(g, d.echoConfig(s))
	}
	return blk.NewServer(g, s.file, d.blkConfig(s))
}

func (d *hostDevices) echoConfig(s deviceSpec) echo.ServerConfig {
	return echo.ServerConfig{Instance: s.instance}
}

// offerSpec is what device j's channel is offered as.
func (d *hostDevices) offerSpec(j int) host.OfferSpec {
	if s := d.specs[j]; s.kind == "echo" {
		return host.OfferSpec{InterfaceType: echo.InterfaceType, InterfaceInstance: s.instance}
	}
	return host.OfferSpec{InterfaceType: blk.InterfaceType, InterfaceInstance: blk.InterfaceInstance}
}

func (d *hostDevices) blkConfig(s deviceSpec) blk.ServerConfig {
	return blk.ServerConfig{Size: s.size, ReadOnly: s.ro, Logger: d.log}
}

// track keeps g's servers until g is gone, then closes them.
func (d *hostDevices) track(g *host.Guest, servers []vsp) {
	d.mu.Lock()
	d.guests[g] = servers
	d.mu.Unlock()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		<-g.Done()
		d.mu.Lock()
		delete(d.guests, g)
		d.mu.Unlock()
		for _, s := range servers {
			if s != nil {
				s.Close() //nolint:errcheck // the guest is gone; nothing to tell
			}
		}
	}()
}

// snapshot is every tracked guest and its servers, by guest id.
func (d *hostDevices) snapshot() []guestServers {
	d.mu.Lock()
	out := make([]guestServers, 0, len(d.guests))
	for g, s := range d.guests {
		out = append(out, guestServers{g: g, servers: s})
	}
	d.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].g.ID() < out[j].g.ID() })
	return out
}

// wait waits until every guest's servers are closed.
func (d *hostDevices) wait() { d.wg.Wait() }

func (d *hostDevices) close() {
	for _, s := range d.specs {
		if s.file != nil {
			s.file.Close()
		}
	}
}
