// Package metrics serves a hosting daemon's Prometheus metrics and
// runtime profiles: the live server channels' counters, read at scrape
// time, the servicing figures, taken from the daemon's events, and a few
// go_* and process_* families. vmbus host --metrics ADDR serves it; a VMM
// embedding a hosting.Daemon can serve the same.
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/internal/promtext"
)

// The server: Prometheus metrics at /metrics and the runtime
// profiles at /debug/pprof/, on a mux of its own. /metrics is the text
// format 0.0.4, written by internal/promtext rather than the official
// client library, whose packages (with protobuf's and procfs's) took
// about a fifth of every start of the host (1.4 to 2 ms of `vmbus --help`),
// the successor's of a servicing included; the go_* and process_*
// families are a few of the official collectors', under their names and
// with their meanings.
//
// Servicing: the server runs beside the bus and never holds it up. Its
// listener and connections are close-on-exec (as every descriptor Go
// opens), so the exec of a servicing closes them and the successor,
// started with the same flags, listens again on the same address (Go
// listens with SO_REUSEADDR, so connections of the predecessor in
// TIME_WAIT are no obstacle). A scrape during the blackout is refused;
// with a port of 0 the successor gets a new port and logs it ("metrics
// listening"). The channel counters are the channels' own and start at
// zero in the successor; govmbus_servicings_total comes from the saved
// state and survives the exec; the blackout histogram holds the blackout
// this process took over with (the predecessor's observations are not
// carried over).

// blackoutBuckets, in seconds: servicing blackouts are milliseconds.
var blackoutBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// Metrics serves /metrics: the live server channels of the daemon, read
// at scrape time, the servicing metrics, which it takes from the daemon's
// events (Observe), and a few go_* and process_* families. It is safe for
// concurrent use (scrapes may overlap).
type Metrics struct {
	d          atomic.Pointer[hosting.Daemon] // set before the daemon serves
	log        *slog.Logger
	servicings atomic.Uint32
	last       atomic.Int64 // the last servicing's blackout, in ns
	blackout   *promtext.Hist
	size       atomic.Int64 // the last scrape's length: the next one's buffer
}

// New returns the metrics of a daemon still to be set (SetDaemon); log
// takes a scrape's errors.
func New(log *slog.Logger) *Metrics {
	return &Metrics{log: log, blackout: promtext.NewHist(blackoutBuckets)}
}

// SetDaemon names the daemon whose channels a scrape reads. Until it is
// set, a scrape shows no channel.
func (m *Metrics) SetDaemon(d *hosting.Daemon) { m.d.Store(d) }

// Observe is the daemon's event subscriber (hosting.Config.Events): a
// servicing complete in this process counts, and its blackout is
// observed.
func (m *Metrics) Observe(e hosting.Event) {
	if c, ok := e.(*hosting.ServicingComplete); ok {
		m.servicings.Store(c.Servicing)
		m.last.Store(int64(c.Blackout))
		m.blackout.Observe(c.Blackout.Seconds())
	}
}

// Servicings is the number of servicings of the host since it first
// started and the blackout of the one this process took over with (0
// before any), for the admin API.
func (m *Metrics) Servicings() (uint32, time.Duration) {
	return m.servicings.Load(), time.Duration(m.last.Load())
}

// channelSample is one open server channel at the scrape.
type channelSample struct {
	labels promtext.Labels // guest, channel, device
	st     channel.Stats
}

// channels snapshots every open server channel of every guest now
// connected, by guest id, then in device order.
func (m *Metrics) channels() []channelSample {
	type key struct {
		guest uint64
		id    uint32
		dev   string
	}
	var out []channelSample
	d := m.d.Load()
	if d == nil {
		return nil
	}
	seen := make(map[key]bool)
	for _, ci := range d.Channels() {
		id := ci.Channel.ChannelID()
		k := key{ci.Guest, id, ci.Device}
		if id == 0 || seen[k] {
			continue // not open: nothing flows
		}
		seen[k] = true
		out = append(out, channelSample{
			labels: promtext.NewLabels("guest", strconv.FormatUint(k.guest, 10), "channel", strconv.FormatUint(uint64(id), 10), "device", k.dev),
			st:     ci.Channel.Stats(),
		})
	}
	return out
}

// write appends the exposition to w: the families in name order (as the
// official client sorted them), each family's series in channel order.
// Go's and the process's families come first and last; what cannot be
// read of the process is left out and its error returned.
func (m *Metrics) write(w *promtext.Writer) error {
	chans := m.channels()
	w.Go()
	// perChannel writes a family of one or two samples per channel; a
	// second sample has the extra label's second value.
	perChannel := func(name, help string, typ promtext.Type, label string, vals func(*channel.Stats) (a, b float64), a, b string) {
		if len(chans) == 0 {
			return
		}
		w.Family(name, help, typ)
		for i := range chans {
			c := &chans[i]
			va, vb := vals(&c.st)
			if label == "" {
				w.Sample(name, c.labels, va)
				continue
			}
			w.Sample(name, c.labels, va, label, a)
			w.Sample(name, c.labels, vb, label, b)
		}
	}
	perChannel("govmbus_channel_bytes_total", "Payload bytes through the channel's rings, padded to 8, by direction.", promtext.Counter,
		"direction", func(s *channel.Stats) (float64, float64) { return float64(s.BytesIn), float64(s.BytesOut) }, "in", "out")
	perChannel("govmbus_channel_completions_pending", "Packets sent to the guest that wait for its completion.", promtext.Gauge,
		"", func(s *channel.Stats) (float64, float64) { return float64(s.CompletionsPending), 0 }, "", "")
	stopped := false
	for i := range chans {
		stopped = stopped || chans[i].st.IncomingStopped != ""
	}
	if stopped {
		const name = "govmbus_channel_incoming_stopped"
		w.Family(name, "1 when the channel stopped reading its incoming ring for good (a corrupt ring, a packet past its limits, a failed packet); the reason is the label.", promtext.Gauge)
		for i := range chans {
			if r := chans[i].st.IncomingStopped; r != "" {
				w.Sample(name, chans[i].labels, 1, "reason", r)
			}
		}
	}
	perChannel("govmbus_channel_packets_total", "Packets through the channel's rings (data and completions), by direction.", promtext.Counter,
		"direction", func(s *channel.Stats) (float64, float64) { return float64(s.PacketsIn), float64(s.PacketsOut) }, "in", "out")
	perChannel("govmbus_channel_polls_total", "The receive goroutine's polls (vmbus host --poll) that found a packet (hit) or ran out of budget (miss).", promtext.Counter,
		"result", func(s *channel.Stats) (float64, float64) { return float64(s.PollHits), float64(s.PollMisses) }, "hit", "miss")
	perChannel("govmbus_channel_queued_total", "Packets and completions to the guest that waited in the channel's send queue for ring space.", promtext.Counter,
		"", func(s *channel.Stats) (float64, float64) { return float64(s.Queued), 0 }, "", "")
	perChannel("govmbus_channel_ring_size_bytes", "Data size of the ring.", promtext.Gauge,
		"ring", func(s *channel.Stats) (float64, float64) { return float64(s.InRingSize), float64(s.OutRingSize) }, "in", "out")
	perChannel("govmbus_channel_ring_used_bytes", "Bytes written and not yet read in the ring at the scrape.", promtext.Gauge,
		"ring", func(s *channel.Stats) (float64, float64) { return float64(s.InRingUsed), float64(s.OutRingUsed) }, "in", "out")
	perChannel("govmbus_channel_signals_total", "Signals to the guest (sent), and commits that needed none (suppressed).", promtext.Counter,
		"kind", func(s *channel.Stats) (float64, float64) { return float64(s.SignalsSent), float64(s.SignalsSuppressed) }, "sent", "suppressed")
	perChannel("govmbus_channel_sleeps_total", "The receive goroutine's sleeps on its event, polling or not.", promtext.Counter,
		"", func(s *channel.Stats) (float64, float64) { return float64(s.Sleeps), 0 }, "", "")
	if len(chans) > 0 {
		// Every reason of every channel, 0 or 1: a stall's end shows as
		// a drop to 0 rather than a series that vanishes.
		const name = "govmbus_channel_stalled"
		w.Family(name, "1 while the channel's stall check finds it stuck for the reason in the label (docs/TOP.md).", promtext.Gauge)
		for i := range chans {
			for _, r := range channel.StallReasons {
				v := 0.0
				if chans[i].st.Stall == r {
					v = 1
				}
				w.Sample(name, chans[i].labels, v, "reason", r)
			}
		}
	}
	perChannel("govmbus_channel_unstuck_total", "Lost signals the host signalled again (vmbus host --unstick).", promtext.Counter,
		"", func(s *channel.Stats) (float64, float64) { return float64(s.Unstuck), 0 }, "", "")
	w.Histogram("govmbus_servicing_blackout_seconds", "Blackout of the servicing this process took over with: from the predecessor's pause to serving again.", m.blackout)
	w.Family("govmbus_servicings_total", "Servicings of this host since it first started (kept across the exec).", promtext.Counter)
	w.Sample("govmbus_servicings_total", promtext.Labels{}, float64(m.servicings.Load()))
	return w.Process()
}

// ServeHTTP serves the exposition, whatever the method and the Accept
// header (the text format is what every Prometheus server reads). A
// family that could not be read is logged and left out; the rest is
// served.
func (m *Metrics) ServeHTTP(rw http.ResponseWriter, _ *http.Request) {
	w := promtext.Writer{Buf: make([]byte, 0, m.size.Load()+1024)}
	if err := m.write(&w); err != nil {
		m.log.Error("metrics scrape", "err", err)
	}
	m.size.Store(int64(len(w.Buf)))
	h := rw.Header()
	h.Set("Content-Type", promtext.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(w.Buf)))
	if _, err := rw.Write(w.Buf); err != nil {
		m.log.Error("metrics scrape", "err", err)
	}
}

// Serve starts the metrics server of m on addr, if set, with /metrics and
// /debug/pprof/; call it once the daemon serves (a successor: once it has
// restored, which ended the blackout m observed). spawned says the
// process is a spawned successor, whose predecessor may hold addr for a
// moment. It returns the function that stops the server, and why the
// server could not start, if it could not (also logged): a host's first
// image refuses to run without the metrics asked for, a successor runs
// on, the bus mattering more than its metrics.
func (m *Metrics) Serve(addr string, spawned bool) (stop func(), err error) {
	log := m.log
	if addr == "" {
		return func() {}, nil
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	l, err := net.Listen("tcp", addr)
	// A spawned successor's predecessor holds the address until it
	// exits, right after the handover.
	for tries := 0; err != nil && spawned && errors.Is(err, syscall.EADDRINUSE) && tries < 100; tries++ {
		time.Sleep(20 * time.Millisecond)
		l, err = net.Listen("tcp", addr)
	}
	if err != nil {
		log.Error("metrics not served", "addr", addr, "err", err)
		return func() {}, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	log.Info("metrics listening", "addr", l.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close() //nolint:errcheck // a CPU profile or trace still running
		}
		<-done
	}, nil
}
