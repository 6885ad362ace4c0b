package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/device/blk"
	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/hvsock"
	"github.com/govmbus/govmbus/internal/floor"
	"github.com/govmbus/govmbus/internal/guestload"
	"github.com/govmbus/govmbus/protocol"
)

// newGuestCmd is `vmbus guest --socket PATH <subcommand>`: guest-side tools.
func newGuestCmd() *cobra.Command {
	var socket string
	cmd := groupCmd("guest --socket PATH [--poll D] <subcommand>", "Guest-side tools: connect to a host and use its channels",
		"Connects to a host daemon (vmbus host) as a VMBus guest.",
		newGuestListCmd(&socket), newGuestPingCmd(&socket), newGuestStreamCmd(&socket), newGuestDiskCmd(&socket),
		newGuestDemoLoadCmd(&socket), newGuestChaosCmd(&socket), newGuestICCmd(&socket), newGuestHVSockCmd(&socket))
	cmd.PersistentFlags().StringVar(&socket, "socket", "", "Unix socket path of the host")
	cmd.PersistentFlags().DurationVar(&guestPoll, "poll", 0, "after each batch, poll the channels' rings this long before sleeping (adaptive; 0: never)")
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
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			cl, err := dialGuestMemory(ctx, *socket, 1<<20)
			if err != nil {
				return err
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

// guestMemory is the guest memory of ping, stream and disk: rings of 256
// KiB each way for echo, and blk's bounce buffers.
const guestMemory = 16 << 20

// dialGuest connects to the host at socket; an unreachable host fails the
// job (exit 1).
func dialGuest(ctx context.Context, socket string) (*guest.Client, error) {
	return dialGuestMemory(ctx, socket, guestMemory)
}

// guestPoll is guest --poll: the client channels' poll budget.
var guestPoll time.Duration

// dialGuestMemory is dialGuest with memory bytes of guest memory.
func dialGuestMemory(ctx context.Context, socket string, memory uint64) (*guest.Client, error) {
	if socket == "" {
		return nil, usageErrorf("guest: --socket is required")
	}
	if err := notSocket("guest: --socket", socket); err != nil {
		return nil, err
	}
	if guestPoll < 0 || guestPoll > channel.MaxPoll {
		return nil, usageErrorf("guest: --poll %v: want 0 to %v", guestPoll, channel.MaxPoll)
	}
	cl, err := guest.Dial(ctx, socket, guest.Config{MemorySize: memory, ChannelPoll: guestPoll})
	if err != nil {
		return nil, failuref("guest: cannot reach host at %s: %v", socket, err)
	}
	return cl, nil
}

// openEcho dials and opens the echo channel, with a receive buffer of
// rxBuffer bytes unless 0.
func openEcho(ctx context.Context, socket string, rxBuffer int) (*guest.Client, *echo.Client, error) {
	cl, err := dialGuestMemory(ctx, socket, guestMemory+uint64(rxBuffer+4095)&^4095)
	if err != nil {
		return nil, nil, err
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := offered(octx, cl, echo.InterfaceType, "echo"); err != nil {
		cl.Close()
		return nil, nil, err
	}
	ec, err := echo.Open(octx, cl, echo.ClientConfig{})
	if err == nil && rxBuffer > 0 {
		if err = ec.UseRxBuffer(octx, rxBuffer); err != nil {
			ec.Close()
		}
	}
	if err != nil {
		cl.Close()
		return nil, nil, failuref("guest: echo device: %v", err)
	}
	return cl, ec, nil
}

// offered fails at once, naming the device, if the host offered no
// channel of interface typ when it had delivered its offers: a host
// offers its devices when a guest connects, so one without it would only
// make the device's Open wait out its context.
func offered(ctx context.Context, cl *guest.Client, typ protocol.GUID, name string) error {
	offers, err := cl.RequestOffers(ctx)
	if err != nil {
		return failuref("guest: %s device: offers: %v", name, err)
	}
	for _, o := range offers {
		if o.InterfaceType == typ {
			return nil
		}
	}
	return failuref("guest: the host offers no %s device (it offers %d channels: vmbus guest list)", name, len(offers))
}

// pingJSON is `vmbus guest ping --json`.
type pingJSON struct {
	Sent         uint64  `json:"sent"`
	Received     uint64  `json:"received"`
	Lost         uint64  `json:"lost"`
	Duplicated   uint64  `json:"duplicated"`
	Corrupted    uint64  `json:"corrupted"`
	Seconds      float64 `json:"seconds"`
	LatencyP50us float64 `json:"latency_p50_us"`
	LatencyP99us float64 `json:"latency_p99_us"`
	// With --floor: the eventfd floor measured just before, and the
	// ping's percentiles as multiples of it; the same for the floor of
	// goroutines woken through Go's runtime poller; and the p50 of that
	// floor with raw system calls (package floor: without the runtime's
	// sysmon wake-ups).
	FloorP50us       *float64 `json:"floor_eventfd_p50_us,omitempty"`
	FloorP99us       *float64 `json:"floor_eventfd_p99_us,omitempty"`
	P50Ratio         *float64 `json:"p50_vs_floor,omitempty"`
	P99Ratio         *float64 `json:"p99_vs_floor,omitempty"`
	PollerFloorP50us *float64 `json:"floor_poller_p50_us,omitempty"`
	P50PollerRatio   *float64 `json:"p50_vs_poller_floor,omitempty"`
	RawFloorP50us    *float64 `json:"floor_raw_poller_p50_us,omitempty"`
	// CPUPerPingus is the guest process's CPU time per round trip.
	CPUPerPingus float64 `json:"cpu_per_ping_us"`
}

func newGuestPingCmd(socket *string) *cobra.Command {
	var (
		count, payload, warmup int
		timeout                time.Duration
		asJSON, floors, chain  bool
	)
	cmd := &cobra.Command{
		Use:   "ping [--count N] [--warmup N] [--payload N] [--from-completion] [--floor] [--json]",
		Short: "Round trips through the echo device, one at a time, with signals",
		Long: `Send --count requests through the echo device one at a time, each asking
for a completion carrying the same bytes, and report round-trip latency.
Each request waits in SendSynchronousRequest; with --from-completion each
is sent from the completion routine of the one before, on the channel's
receive goroutine, without the hand-off to the waiting goroutine.
--warmup round trips go first, checked but not counted (by default a tenth
of --count, as the floor's: a polling channel's budget adapts to the
traffic in its first round trips). --floor first measures this machine's round-trip floors (as "vmbus bench
floor" does, --count round trips) and reports the percentiles as multiples
of the eventfd floor, and p50 of the runtime poller's, too. Exit status 1 if any was lost (no answer within
--timeout) or corrupted.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("warmup") {
				warmup = count / 10
			}
			if count <= 0 || count > floor.MaxCount || warmup < 0 || warmup > floor.MaxCount || payload < echo.HeaderSize || payload > echo.DefaultMaxPayload || timeout <= 0 {
				return usageErrorf("ping: want 0 < --count <= %d, 0 <= --warmup <= %d, %d <= --payload <= %d, --timeout > 0", floor.MaxCount, floor.MaxCount, echo.HeaderSize, echo.DefaultMaxPayload)
			}
			var fl, pfl, rfl floor.Latency
			if floors {
				res, err := measureFloor(count)
				if err != nil {
					return failuref("ping: floor: %v", err)
				}
				fl, pfl, rfl = res.Eventfd, res.Poller, res.RawPoller
			}
			cl, ec, err := openEcho(cmd.Context(), *socket, 0)
			if err != nil {
				return err
			}
			defer cl.Close()
			defer ec.Close()
			ping := ec.Ping
			if chain {
				ping = ec.PingFromCompletion
			}
			if warmup > 0 {
				res, err := ping(cmd.Context(), warmup, payload, timeout)
				if err != nil {
					return failuref("ping: warm-up: %v", err)
				}
				if res.Lost+res.Corrupted+res.Duplicated > 0 || res.Received != uint64(warmup) {
					return failuref("ping: warm-up: %d lost, %d duplicated, %d corrupted", res.Lost, res.Duplicated, res.Corrupted)
				}
			}
			res, err := ping(cmd.Context(), count, payload, timeout)
			if err != nil {
				return failuref("ping: %v", err)
			}
			out := pingJSON{res.Sent, res.Received, res.Lost, res.Duplicated, res.Corrupted, res.Seconds,
				float64(res.P50.Nanoseconds()) / 1e3, float64(res.P99.Nanoseconds()) / 1e3, nil, nil, nil, nil, nil, nil, nil, res.CPUPerPing.Seconds() * 1e6}
			if floors {
				f50, f99 := float64(fl.P50.Nanoseconds())/1e3, float64(fl.P99.Nanoseconds())/1e3
				r50, r99 := out.LatencyP50us/f50, out.LatencyP99us/f99
				out.FloorP50us, out.FloorP99us, out.P50Ratio, out.P99Ratio = &f50, &f99, &r50, &r99
				p50 := float64(pfl.P50.Nanoseconds()) / 1e3
				rp50 := out.LatencyP50us / p50
				out.PollerFloorP50us, out.P50PollerRatio = &p50, &rp50
				raw := float64(rfl.P50.Nanoseconds()) / 1e3
				out.RawFloorP50us = &raw
			}
			if asJSON {
				if err := printJSON(cmd.OutOrStdout(), out); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "ping: %d sent, %d received, %d lost, %d duplicated, %d corrupted in %.3f s; latency p50 %.1f µs, p99 %.1f µs\n",
					out.Sent, out.Received, out.Lost, out.Duplicated, out.Corrupted, out.Seconds, out.LatencyP50us, out.LatencyP99us)
				if floors {
					fmt.Fprintf(cmd.OutOrStdout(), "ping: eventfd floor p50 %.1f µs, p99 %.1f µs; ping = %.2f× the floor at p50, %.2f× at p99; %.2f× the poller floor's p50 (%.1f µs; with raw system calls %.1f µs)\n",
						*out.FloorP50us, *out.FloorP99us, *out.P50Ratio, *out.P99Ratio, *out.P50PollerRatio, *out.PollerFloorP50us, *out.RawFloorP50us)
				}
			}
			if res.Lost+res.Corrupted+res.Duplicated > 0 || res.Received != uint64(count) {
				return failuref("ping: %d lost, %d duplicated, %d corrupted", res.Lost, res.Duplicated, res.Corrupted)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&count, "count", 1000, "round trips")
	f.IntVar(&warmup, "warmup", 0, "round trips first, not counted (default --count/10)")
	f.IntVar(&payload, "payload", 64, "bytes per request")
	f.DurationVar(&timeout, "timeout", time.Second, "wait for each answer at most this long")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	f.BoolVar(&floors, "floor", false, "measure the round-trip floors first and report ratios to them")
	f.BoolVar(&chain, "from-completion", false, "send each request from the completion routine of the one before")
	return cmd
}

// streamJSON is `vmbus guest stream --json`.
type streamJSON struct {
	Payload       int     `json:"payload"`
	Sent          uint64  `json:"sent"`
	Received      uint64  `json:"received"`
	Lost          uint64  `json:"lost"`
	Duplicated    uint64  `json:"duplicated"`
	Corrupted     uint64  `json:"corrupted"`
	Seconds       float64 `json:"seconds"`
	PacketsPerSec float64 `json:"packets_per_sec"`
	BytesPerSec   float64 `json:"bytes_per_sec"`
}

func newGuestStreamCmd(socket *string) *cobra.Command {
	var (
		payload, window, rxBuffer int
		count                     uint64
		idle                      time.Duration
		asJSON                    bool
	)
	cmd := &cobra.Command{
		Use:   "stream --payload N --count N [--window N] [--idle D] [--rx-buffer BYTES] [--json]",
		Short: "Stream numbered, checksummed packets through the echo device and check each comes back once, intact",
		Long: `Send --count packets of --payload bytes through the echo device, up to
--window of them in flight (by default as many as one ring holds, so
that no packet waits for ring space). Each carries a sequence number and a
checksum; the echo device sends each back as a packet, and every one must
come back once and intact; packets still missing once none came back for
--idle count as lost. With --rx-buffer the guest shares a receive buffer
of that many bytes and the device answers through it (transfer-page
packets) instead of in band. Exit status 1 on any loss, duplicate or
corruption.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if payload < echo.HeaderSize || payload > echo.DefaultMaxPayload || count == 0 || count > 1<<34 || window < 0 || window > 1<<16 || idle <= 0 || rxBuffer < 0 || rxBuffer > echo.MaxRxBuffer {
				return usageErrorf("stream: want %d <= --payload <= %d, 0 < --count <= 2^34, 0 <= --window <= 65536, --idle > 0, 0 <= --rx-buffer <= %d", echo.HeaderSize, echo.DefaultMaxPayload, echo.MaxRxBuffer)
			}
			cl, ec, err := openEcho(cmd.Context(), *socket, rxBuffer)
			if err != nil {
				return err
			}
			defer cl.Close()
			defer ec.Close()
			res, err := ec.Stream(cmd.Context(), echo.StreamConfig{Payload: payload, Count: count, Window: window, Idle: idle})
			out := streamJSON{payload, res.Sent, res.Received, res.Lost, res.Duplicated, res.Corrupted, res.Seconds, res.PacketsPerSec, res.BytesPerSec}
			if asJSON {
				if err := printJSON(cmd.OutOrStdout(), out); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "stream: %d packets of %d bytes: %d sent, %d received, %d lost, %d duplicated, %d corrupted\n  seconds      %.3f\n  packets/s    %.2f M\n  bytes/s      %.2f GB/s\n",
					count, payload, out.Sent, out.Received, out.Lost, out.Duplicated, out.Corrupted, out.Seconds, out.PacketsPerSec/1e6, out.BytesPerSec/1e9)
			}
			if err != nil {
				return failuref("stream: %v", err)
			}
			if res.Lost+res.Corrupted+res.Duplicated > 0 {
				return failuref("stream: %d lost, %d duplicated, %d corrupted", res.Lost, res.Duplicated, res.Corrupted)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&payload, "payload", 64, "bytes per packet (at least 16: sequence number, checksum, length)")
	f.Uint64Var(&count, "count", 100000, "packets")
	f.IntVar(&window, "window", 0, "packets in flight at most (0: as many as one ring holds)")
	f.DurationVar(&idle, "idle", echo.DefaultIdle, "count the packets still missing as lost once none came back for this long")
	f.IntVar(&rxBuffer, "rx-buffer", 0, "bytes of receive buffer the device answers through (transfer pages), rounded up to whole pages; 0: answers in band")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func newGuestDiskCmd(socket *string) *cobra.Command {
	return groupCmd("disk <subcommand>", "Use the blk device", "", newGuestDiskVerifyCmd(socket))
}

func newGuestDiskVerifyCmd(socket *string) *cobra.Command {
	var (
		size   int64
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "verify [--size N] [--json]",
		Short: "Write a pattern to the disk, read it back and check every byte",
		Long: `Write a pseudo-random pattern over the first --size bytes of the blk
disk (default: all of it, at most 64 MiB), flush, read it back and compare
every byte. Exit status 1 on any mismatch or I/O error.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if size < 0 {
				return usageErrorf("disk verify: --size must not be negative")
			}
			cl, err := dialGuest(cmd.Context(), *socket)
			if err != nil {
				return err
			}
			defer cl.Close()
			octx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			if err := offered(octx, cl, blk.InterfaceType, "blk"); err != nil {
				return err
			}
			d, err := blk.Open(octx, cl, blk.ClientConfig{})
			if err != nil {
				return failuref("disk verify: blk device: %v", err)
			}
			defer d.Close()
			if size == 0 {
				size = min(d.Size(), 64<<20)
			}
			if size > d.Size() {
				return usageErrorf("disk verify: --size %d exceeds the disk's %d bytes", size, d.Size())
			}
			res, err := guestload.VerifyDisk(d, size)
			if err != nil {
				// Nothing was verified to the end: no summary that
				// reads as if it had been.
				return failuref("disk verify: %v", err)
			}
			if asJSON {
				if err := printJSON(cmd.OutOrStdout(), res); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "disk verify: %d of %d bytes, %d mismatched, %.3f s (write %.1f MB/s, read %.1f MB/s)\n",
					res.Size, res.DiskSize, res.Mismatches, res.Seconds, res.WriteBytesPerSec/1e6, res.ReadBytesPerSec/1e6)
			}
			if res.Mismatches > 0 {
				return failuref("disk verify: %d bytes differ, the first at offset %d", res.Mismatches, res.FirstMismatch)
			}
			return nil
		},
	}
	cmd.Flags().Int64Var(&size, "size", 0, "bytes to verify from the start of the disk (0: the whole disk, at most 64 MiB)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

// newGuestHVSockCmd is `vmbus guest hvsock dial|listen SERVICE`: nc on stdin and stdout (hvsock.Stdio).
func newGuestHVSockCmd(socket *string) *cobra.Command {
	var execCmd string
	cmd := &cobra.Command{
		Use: "hvsock dial|listen SERVICE [--exec CMD]", Short: "Connect stdin and stdout to the host's hvsock SERVICE (a GUID or vsock port), or take its connections (docs/HVSOCK.md)",
		Args: exactArgs(2, "dial|listen and a SERVICE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("exec") && strings.TrimSpace(execCmd) == "" {
				return usageErrorf("guest hvsock: --exec wants a command")
			}
			st, err := hvsock.ParseStdio(args[0], args[1], execCmd)
			if err != nil {
				return usageErrorf("guest hvsock: %v", err)
			}
			cl, err := dialGuest(cmd.Context(), *socket)
			if err == nil {
				defer cl.Close()
				if err = st.Run(cl); err != nil {
					err = failuref("guest hvsock: %v", err)
				}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&execCmd, "exec", "", "with listen: run sh -c CMD for each connection, on its stdin and stdout")
	return cmd
}
