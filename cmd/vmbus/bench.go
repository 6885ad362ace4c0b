package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/internal/floor"
	"github.com/govmbus/govmbus/internal/ringbench"
)

func newBenchCmd() *cobra.Command {
	return groupCmd("bench", "Measure govmbus's throughput", "", newBenchRingCmd(), newBenchRingEchoCmd(),
		newBenchFloorCmd(), newBenchFloorPeerCmd())
}

// measureFloor runs the floors of this machine (package floor) with this
// binary's `bench floor-peer` as the peer.
func measureFloor(count int) (floor.Result, error) {
	exe, err := os.Executable()
	if err != nil {
		return floor.Result{}, err
	}
	return floor.Measure(floor.Config{Count: count, Warmup: count / 10, PeerCommand: []string{exe, "bench", "floor-peer"}})
}

func newBenchFloorCmd() *cobra.Command {
	var (
		count  int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "floor [--count N] [--json]",
		Short: "This machine's floor for a round trip between two processes",
		Long: `Measures four round-trip floors between this process and a second one,
one after the other: an eventfd ping-pong (each side sleeps in read(2) on a
thread of its own and wakes the other: what a signalled VMBus round trip
costs at least); the same between goroutines that sleep in Go's runtime
poller (what it costs a Go program, whose channels' receive goroutines
sleep there); the poller's again with raw system calls, which the runtime
does not see and which so do not wake its sysmon thread (what the
runtime's bookkeeping around system calls adds; not a safe way to signal
a peer); and a spin ping-pong through shared memory (neither sleeps: the
bound for polling). Prints p50, p99 and this side's CPU time per round
trip. Latency figures mean something only next to a floor measured in the
same run on the same machine; "vmbus guest ping --floor" reports its own as
ratios to them.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if count <= 0 || count > floor.MaxCount {
				return usageErrorf("bench floor: want 0 < --count <= %d", floor.MaxCount)
			}
			res, err := measureFloor(count)
			if err != nil {
				return failuref("bench floor: %v", err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			res.WriteText(cmd.OutOrStdout(), count)
			return nil
		},
	}
	cmd.Flags().IntVar(&count, "count", 20000, "round trips per floor")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

// newBenchFloorPeerCmd is the peer process of `bench floor`, started by
// it; not for use by hand.
func newBenchFloorPeerCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "floor-peer",
		Short:  "The peer process of bench floor",
		Hidden: true,
		Args:   exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := floor.ServePeer(func() { fmt.Fprintln(cmd.OutOrStdout(), "ready") }); err != nil {
				return failuref("floor-peer: %v", err)
			}
			return nil
		},
	}
}

// newBenchRingEchoCmd is the echo process of `bench ring --round-trip
// --processes 2`, started by it; not for use by hand.
func newBenchRingEchoCmd() *cobra.Command {
	var c ringbench.Config
	cmd := &cobra.Command{
		Use:    "ring-echo",
		Short:  "The echo process of a two-process ring round trip",
		Hidden: true,
		Args:   exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c.RoundTrip, c.Signal = true, true
			err := ringbench.RunEchoProcess(c, func() { fmt.Fprintln(cmd.OutOrStdout(), "ready") })
			if err != nil {
				return failuref("ring-echo: %v", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&c.Payload, "payload", 64, "payload bytes per packet")
	f.IntVar(&c.Count, "count", 0, "packets to answer")
	f.IntVar(&c.RingSize, "ring-size", 262144, "ring data bytes")
	return cmd
}

func newBenchRingCmd() *cobra.Command {
	var (
		c         ringbench.Config
		asJSON    bool
		processes int
	)
	cmd := &cobra.Command{
		Use:   "ring --payload N --count N --ring-size BYTES [--batch N] [--signal] [--zero-copy] [--round-trip [--processes 2]] [--json]",
		Short: "One writer and one reader goroutine on one ring",
		Long: `One writer goroutine and one reader goroutine stream in-band packets
through one ring in memory. By default both busy-poll and the reader copies
each payload out; --zero-copy reads each payload in place and touches every
byte; --signal makes both sides sleep on eventfds with the interrupt-mask
and pending-send-size protocols, and reports the signals sent. The writer
commits every --batch packets (default: every ring-size/16 bytes). Every
packet carries its sequence number, and the run fails (exit 1) unless the
reader saw each exactly once and in order.

--round-trip is the pattern of an echo stream on bare rings: a second
goroutine reads each packet in place and writes it back through a second
ring; the first keeps as many packets in flight as one ring holds and
reads the answers. Packets per second then counts packets that went there
and back. It is the raw-ring figure to hold "vmbus guest stream" against;
with --processes 2 the echo side runs in a second process (the rings in a
shared memfd, one eventfd per direction), as the host does for a guest.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch processes {
			case 1:
			case 2:
				if !c.RoundTrip || !c.Signal {
					return usageErrorf("bench ring: --processes 2 needs --round-trip and --signal")
				}
				exe, err := os.Executable()
				if err != nil {
					return failuref("bench ring: %v", err)
				}
				c.EchoCommand = []string{exe, "bench", "ring-echo", "--payload", strconv.Itoa(c.Payload),
					"--count", strconv.Itoa(c.Count), "--ring-size", strconv.Itoa(c.RingSize)}
			default:
				return usageErrorf("bench ring: --processes must be 1 or 2")
			}
			if err := c.Validate(); err != nil {
				return usageErrorf("bench ring: %v", err)
			}
			res, err := ringbench.Run(c)
			if err != nil {
				return failuref("bench ring: %v", err)
			}
			if want := ringbench.ExpectedChecksum(c); res.Checksum != want {
				return failuref("reader saw sequence-number sum %d, want %d: packets lost or reordered", res.Checksum, want)
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
			}
			res.WriteText(cmd.OutOrStdout(), c)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&c.Payload, "payload", 64, "payload bytes per packet")
	f.IntVar(&c.Count, "count", 1000000, "packets to send")
	f.IntVar(&c.RingSize, "ring-size", 262144, "ring data bytes (a multiple of 4096)")
	f.IntVar(&c.Batch, "batch", 0, "packets per writer commit (0: every ring-size/16 bytes)")
	f.BoolVar(&c.Signal, "signal", false, "sleep on eventfds instead of busy-polling")
	f.BoolVar(&c.ZeroCopy, "zero-copy", false, "read payloads in place instead of copying them")
	f.BoolVar(&c.RoundTrip, "round-trip", false, "echo every packet back through a second ring")
	f.IntVar(&processes, "processes", 1, "2: the echo side of --round-trip --signal runs in a process of its own")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}
