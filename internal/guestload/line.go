package guestload

import (
	"sync/atomic"
	"time"
)

// Line is one stdout line of the load: a "progress" line about every
// Config.Interval, then one "result" line. The counters are totals since
// the load started, over every channel; every packet and disk byte counted
// in them has been checked. Its JSON form is what `vmbus demo` and `vmbus
// soak` read from their guests.
type Line struct {
	Type    string  `json:"type"` // "progress" or "result"
	Seconds float64 `json:"seconds"`

	Channels   int    `json:"channels"` // echo channels streaming
	Payload    int    `json:"payload"`
	Packets    uint64 `json:"packets"`     // stream packets sent and back intact
	Bytes      uint64 `json:"bytes"`       // their payload bytes
	Sent       uint64 `json:"sent"`        // stream packets sent
	Lost       uint64 `json:"lost"`        // stream and ping
	Duplicated uint64 `json:"duplicated"`  // stream
	Corrupted  uint64 `json:"corrupted"`   // stream and ping
	Stray      uint64 `json:"stray"`       // packets back outside any stream
	Rounds     uint64 `json:"disk_rounds"` // disk write-flush-read rounds

	DiskBytes  int64 `json:"disk_bytes"` // written, read back and compared
	Mismatches int64 `json:"mismatches"` // disk bytes that differed

	// The result line only.
	ChannelPackets []uint64 `json:"channel_packets,omitempty"` // Packets by channel, in instance order
	StreamSeconds  float64  `json:"stream_seconds,omitempty"`
	DiskSeconds    float64  `json:"disk_seconds,omitempty"`
	PingSent       uint64   `json:"ping_sent,omitempty"`
	PingReceived   uint64   `json:"ping_received,omitempty"`
	PingP50us      float64  `json:"ping_p50_us,omitempty"`
	PingP99us      float64  `json:"ping_p99_us,omitempty"`
	Errors         []string `json:"errors,omitempty"`
}

// Line types.
const (
	TypeProgress = "progress"
	TypeResult   = "result"
)

// counters are the load's running totals, written by the stream and disk
// goroutines and read by the progress printer.
type counters struct {
	packets, bytes, sent, lost, dup, corrupt atomic.Uint64
	rounds                                   atomic.Uint64
	diskBytes, mismatches                    atomic.Int64
	channel                                  []atomic.Uint64 // packets by channel
}

func (c *counters) snapshot(typ string, since time.Time, payload int) Line {
	return Line{Type: typ, Seconds: time.Since(since).Seconds(), Channels: len(c.channel), Payload: payload,
		Packets: c.packets.Load(), Bytes: c.bytes.Load(), Sent: c.sent.Load(),
		Lost: c.lost.Load(), Duplicated: c.dup.Load(), Corrupted: c.corrupt.Load(), Rounds: c.rounds.Load(),
		DiskBytes: c.diskBytes.Load(), Mismatches: c.mismatches.Load()}
}
