package hosting

import (
	"log/slog"
	"time"

	"github.com/govmbus/govmbus/channel"
)

// stallEvery is how often the daemon checks its channels for stalls: one
// goroutine for all of them, so the packet paths pay nothing.
const stallEvery = time.Second

// watchStalls checks every served channel each stallEvery until stop is
// closed, logging each stall once when it starts (with both rings'
// indices) and once when it ends. It runs while the daemon accepts
// guests; a servicing's blackout has no checks (its channels are paused
// anyway).
func (d *Daemon) watchStalls(stop <-chan struct{}) {
	t := time.NewTicker(stallEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			for _, ci := range d.Channels() {
				d.logStall(ci, ci.Channel.CheckStall(now, d.cfg.Stall))
			}
		}
	}
}

// logStall logs what a check found, if it changed.
func (d *Daemon) logStall(ci ChannelInfo, res channel.StallCheck) {
	who := []any{"guest", ci.Guest, "device", ci.Device, "channel", ci.Channel.ChannelID()}
	if res.Reason != res.Prev && res.Prev != "" {
		d.log.Info("channel stall ended", append(who, "reason", res.Prev)...)
	}
	if res.Reason != res.Prev && res.Reason != "" {
		d.log.Warn("channel stalled", append(who, "reason", res.Reason, "since", res.Since.Format(time.RFC3339Nano),
			slog.Group("in", "write", res.In.WriteIndex, "read", res.In.ReadIndex, "mask", res.In.InterruptMask, "pending_send", res.In.PendingSendSize),
			slog.Group("out", "write", res.Out.WriteIndex, "read", res.Out.ReadIndex, "mask", res.Out.InterruptMask, "pending_send", res.Out.PendingSendSize))...)
	}
	if res.Unstuck {
		d.log.Info("channel signalled again (lost signal)", who...)
	}
}
