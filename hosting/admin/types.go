package admin

import (
	"fmt"
	"io"
	"time"

	"github.com/govmbus/govmbus/device/ic"
)

// Guest is one connected guest: GET /v1/guests.
type Guest struct {
	ID       uint64     `json:"id"`
	Channels []Channel  `json:"channels"`
	Health   *ic.Health `json:"health,omitempty"` // with a heartbeat device
}

// Channel is one device's channel on a guest.
type Channel struct {
	Device string `json:"device"`
	State  string `json:"state"`
	// ID is the channel's id on the bus, 0 while it is not open.
	ID uint32 `json:"id,omitempty"`
	// Stall is the reason the host's stall check finds the channel
	// stuck (channel.StallLostSignal, ...), empty while it is not.
	Stall string        `json:"stall,omitempty"`
	Stats *ChannelStats `json:"stats,omitempty"`
	IC    *ic.Status    `json:"ic,omitempty"` // an integration component's
}

// ChannelStats are a channel's counters and ring occupancy at the request
// (channel.Stats): in is from the guest, out to it.
type ChannelStats struct {
	PacketsIn          uint64 `json:"packets_in"`
	BytesIn            uint64 `json:"bytes_in"`
	PacketsOut         uint64 `json:"packets_out"`
	BytesOut           uint64 `json:"bytes_out"`
	SignalsSent        uint64 `json:"signals_sent"`
	SignalsSuppressed  uint64 `json:"signals_suppressed"`
	Queued             uint64 `json:"queued"`
	CompletionsPending int    `json:"completions_pending"`
	InRingUsed         int    `json:"in_ring_used"`
	InRingSize         int    `json:"in_ring_size"`
	OutRingUsed        int    `json:"out_ring_used"`
	OutRingSize        int    `json:"out_ring_size"`
	Unstuck            uint64 `json:"unstuck"`
	// PollHits and PollMisses count the receive goroutine's polls that
	// found a packet and that ran out (vmbus host --poll); Sleeps its
	// sleeps on its event.
	PollHits   uint64 `json:"poll_hits"`
	PollMisses uint64 `json:"poll_misses"`
	Sleeps     uint64 `json:"sleeps"`
}

// HostInfo is the host process: GET /v1/host.
type HostInfo struct {
	Pid int `json:"pid"`
	// Servicings counts the servicings since the host first started;
	// LastBlackout is the blackout of the one this process took over
	// with (0 before any, or without Config.Servicings).
	Servicings   uint32   `json:"servicings"`
	LastBlackout Duration `json:"last_blackout"`
}

// ShutdownRequest is the body of POST /v1/guests/{id}/shutdown.
type ShutdownRequest struct {
	// Action is "shutdown" (empty too), "reboot" or "hibernate".
	Action  string `json:"action,omitempty"`
	Force   bool   `json:"force,omitempty"`
	Message string `json:"message,omitempty"`
	// Timeout is told to the guest, in whole seconds.
	Timeout Duration `json:"timeout,omitempty"`
}

// TimeResult answers POST /v1/guests/{id}/time.
type TimeResult struct {
	Sample ic.TimeSample `json:"sample"`
	// Offset is the guest's offset (its reported host time minus its
	// clock) as the host knows it: host and guest share this machine's
	// clock, so the guest's offset from this sample lies in
	// [-RoundTrip, 0] (the parent time was taken before the send, the
	// guest's clock read after); Offset is the middle, -RoundTrip/2.
	Offset Duration `json:"offset"`
	// Versions is the negotiated framework/message version: 4.0 carries
	// the reference time, which makes the guest's offset exact.
	Versions string `json:"versions"`
}

// KVSet is the body of PUT /v1/guests/{id}/kvp/{pool}/{key}.
type KVSet struct {
	Value string `json:"value"`
}

// KVResult answers a KVP request: the entries for a list, one for a get.
type KVResult struct {
	Pool    string  `json:"pool"`
	Entries []ic.KV `json:"entries"`
}

// CaptureRequest starts a capture of the bus (POST /v1/capture): the
// file, truncated, and the snap length and size limit (0: the defaults,
// docs/CAPTURE.md).
type CaptureRequest struct {
	Path     string `json:"path"`
	SnapLen  int    `json:"snaplen,omitempty"`
	MaxBytes int64  `json:"max_bytes,omitempty"`
}

// CaptureResult is what a stopped capture recorded (DELETE /v1/capture).
type CaptureResult struct {
	Records uint64 `json:"records"`
	Dropped uint64 `json:"dropped"`
	Bytes   int64  `json:"bytes"`
}

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
	// Retry (with 503): a servicing refused or cut off the request, and
	// sending it again is safe: it was not carried out, or carrying it
	// out twice does no harm (Idempotent).
	Retry bool `json:"retry,omitempty"`
}

// Duration is a time.Duration written in JSON as Go writes one ("1.5s").
type Duration time.Duration

// MarshalText writes d as time.Duration.String.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a time.ParseDuration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// WriteGuests prints gs as text, a line per guest and one per channel, as
// `vmbus admin guests` does.
func WriteGuests(w io.Writer, gs []Guest) {
	for _, g := range gs {
		fmt.Fprintf(w, "guest %d", g.ID)
		if h := g.Health; h != nil {
			fmt.Fprintf(w, " health %s answers %d misses %d", h.State, h.Answers, h.Misses)
		}
		fmt.Fprintln(w)
		for _, c := range g.Channels {
			fmt.Fprintf(w, "  %s %s", c.Device, c.State)
			if s := c.IC; s != nil {
				versions := s.Versions
				if versions == "" {
					versions = "none"
				}
				fmt.Fprintf(w, " versions %s requests %d answers %d unanswered %d unexpected %d", versions, s.Requests, s.Answers, s.Unanswered, s.Unexpected)
			}
			fmt.Fprintln(w)
		}
	}
}
