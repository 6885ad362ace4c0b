package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/govmbus/govmbus/channel"
)

// The --metrics server: Prometheus metrics at /metrics and the runtime
// profiles at /debug/pprof/, on a mux of its own.
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

// channelServer is what the collector needs of a device server.
type channelServer interface {
	Channel() *channel.Channel
}

// blackoutBuckets, in seconds: servicing blackouts are milliseconds.
var blackoutBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// hostCollector exports the live server channels of the daemon at scrape
// time, and the servicing metrics.
type hostCollector struct {
	devs       *hostDevices
	servicings atomic.Uint32 // set once, before the server starts
	blackout   prometheus.Histogram

	packets, bytes, ringUsed, ringSize, signals, pending, queued, stopped *prometheus.Desc
	servicingsDesc                                                        *prometheus.Desc
}

func newHostCollector(devs *hostDevices) *hostCollector {
	labels := []string{"guest", "channel", "device"}
	with := func(l string) []string { return append(labels[:len(labels):len(labels)], l) }
	return &hostCollector{
		devs: devs,
		blackout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "govmbus_servicing_blackout_seconds",
			Help:    "Blackout of the servicing this process took over with: from the predecessor's pause to serving again.",
			Buckets: blackoutBuckets,
		}),
		packets:        prometheus.NewDesc("govmbus_channel_packets_total", "Packets through the channel's rings (data and completions), by direction.", with("direction"), nil),
		bytes:          prometheus.NewDesc("govmbus_channel_bytes_total", "Payload bytes through the channel's rings, padded to 8, by direction.", with("direction"), nil),
		ringUsed:       prometheus.NewDesc("govmbus_channel_ring_used_bytes", "Bytes written and not yet read in the ring at the scrape.", with("ring"), nil),
		ringSize:       prometheus.NewDesc("govmbus_channel_ring_size_bytes", "Data size of the ring.", with("ring"), nil),
		signals:        prometheus.NewDesc("govmbus_channel_signals_total", "Signals to the guest (sent), and commits that needed none (suppressed).", with("kind"), nil),
		pending:        prometheus.NewDesc("govmbus_channel_completions_pending", "Packets sent to the guest that wait for its completion.", labels, nil),
		stopped:        prometheus.NewDesc("govmbus_channel_incoming_stopped", "1 when the channel stopped reading its incoming ring for good (a corrupt ring, a packet past its limits, a failed packet); the reason is the label.", with("reason"), nil),
		queued:         prometheus.NewDesc("govmbus_channel_queued_total", "Packets and completions to the guest that waited in the channel's send queue for ring space.", labels, nil),
		servicingsDesc: prometheus.NewDesc("govmbus_servicings_total", "Servicings of this host since it first started (kept across the exec).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (m *hostCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.packets, m.bytes, m.ringUsed, m.ringSize, m.signals, m.pending, m.queued, m.stopped, m.servicingsDesc} {
		ch <- d
	}
	m.blackout.Describe(ch)
}

// Collect implements prometheus.Collector: one snapshot of every open
// server channel of every guest now connected.
func (m *hostCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(m.servicingsDesc, prometheus.CounterValue, float64(m.servicings.Load()))
	m.blackout.Collect(ch)
	type key struct {
		guest uint64
		id    uint32
		dev   string
	}
	seen := make(map[key]bool)
	for _, gs := range m.devs.snapshot() {
		for j, s := range gs.servers {
			cs, ok := s.(channelServer)
			if !ok {
				continue
			}
			c := cs.Channel()
			id := c.ChannelID()
			k := key{gs.g.ID(), id, m.devs.specs[j].kind}
			if id == 0 || seen[k] {
				continue // not open: nothing flows
			}
			seen[k] = true
			st := c.Stats()
			lv := []string{strconv.FormatUint(k.guest, 10), strconv.FormatUint(uint64(id), 10), k.dev}
			l := func(extra string) []string { return append(lv[:3:3], extra) }
			counter := func(d *prometheus.Desc, v uint64, extra string) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l(extra)...)
			}
			gauge := func(d *prometheus.Desc, v int, extra string) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), l(extra)...)
			}
			counter(m.packets, st.PacketsIn, "in")
			counter(m.packets, st.PacketsOut, "out")
			counter(m.bytes, st.BytesIn, "in")
			counter(m.bytes, st.BytesOut, "out")
			counter(m.signals, st.SignalsSent, "sent")
			counter(m.signals, st.SignalsSuppressed, "suppressed")
			gauge(m.ringUsed, st.InRingUsed, "in")
			gauge(m.ringUsed, st.OutRingUsed, "out")
			gauge(m.ringSize, st.InRingSize, "in")
			gauge(m.ringSize, st.OutRingSize, "out")
			ch <- prometheus.MustNewConstMetric(m.pending, prometheus.GaugeValue, float64(st.CompletionsPending), lv...)
			ch <- prometheus.MustNewConstMetric(m.queued, prometheus.CounterValue, float64(st.Queued), lv...)
			if st.IncomingStopped != "" {
				ch <- prometheus.MustNewConstMetric(m.stopped, prometheus.GaugeValue, 1, l(st.IncomingStopped)...)
			}
		}
	}
}

// startMetrics starts the --metrics server, if addr is set, once the
// daemon serves (a successor: once it has restored, which ended the
// blackout that began at paused). It returns the function that stops the
// server. A server that cannot start is logged, not fatal: the bus
// matters more than its metrics.
func (d *daemon) startMetrics(addr string, successor bool, paused time.Time) (stop func()) {
	if addr == "" {
		return func() {}
	}
	m := newHostCollector(d.devs)
	m.servicings.Store(d.count)
	if successor {
		m.blackout.Observe(time.Since(paused).Seconds())
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{d}}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		d.log.Error("metrics not served", "addr", addr, "err", err)
		return func() {}
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("metrics server", "err", err)
		}
	}()
	d.log.Info("metrics listening", "addr", l.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close() //nolint:errcheck // a CPU profile or trace still running
		}
		<-done
	}
}

// slogPrinter is promhttp's error log, on the daemon's logger.
type slogPrinter struct{ d *daemon }

func (p slogPrinter) Println(v ...any) { p.d.log.Error("metrics scrape", "err", fmt.Sprint(v...)) }
