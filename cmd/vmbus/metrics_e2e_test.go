package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/hosting/metrics"
	"github.com/govmbus/govmbus/internal/port"
	"github.com/govmbus/govmbus/internal/promtext"
)

// freePort is a loopback address whose port was free a moment ago, below
// the ephemeral range (port.Free).
func freePort(t *testing.T) string {
	t.Helper()
	addr := port.Free()
	if addr == "" {
		t.Fatal("no free loopback port")
	}
	return addr
}

// scrape fetches /metrics, checks that it is well-formed text format
// 0.0.4 (parseExposition), and returns the samples by their full name
// with labels, as the text format writes them.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != promtext.ContentType {
		t.Fatalf("/metrics Content-Type %q, want %q", ct, promtext.ContentType)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out, err := parseExposition(string(body))
	if err != nil {
		t.Fatalf("/metrics: %v\n%s", err, body)
	}
	return out
}

// parseExposition reads the text format as strictly as the host writes
// it: each family opened by "# HELP" then "# TYPE" lines, its samples
// contiguous and named after it (a histogram's _bucket, _sum and _count),
// families in name order, no series twice, label values and help texts
// escaped, histogram buckets increasing up to +Inf and cumulative, the
// +Inf bucket equal to _count. The samples are keyed by the line up to
// the value.
func parseExposition(text string) (map[string]float64, error) {
	out := make(map[string]float64)
	var family, typ, help string
	var les []float64 // the current histogram's bucket bounds and counts
	var cum []float64
	endFamily := func() error {
		if typ != "histogram" {
			return nil
		}
		n := len(les)
		if n == 0 || !math.IsInf(les[n-1], 1) {
			return fmt.Errorf("histogram %s: no +Inf bucket", family)
		}
		for i := 1; i < n; i++ {
			if les[i] <= les[i-1] || cum[i] < cum[i-1] {
				return fmt.Errorf("histogram %s: buckets %v counts %v", family, les, cum)
			}
		}
		if c, ok := out[family+"_count"]; !ok || c != cum[n-1] {
			return fmt.Errorf("histogram %s: _count %v, +Inf bucket %v", family, c, cum[n-1])
		}
		if _, ok := out[family+"_sum"]; !ok {
			return fmt.Errorf("histogram %s: no _sum", family)
		}
		return nil
	}
	if !strings.HasSuffix(text, "\n") {
		return nil, errors.New("no final newline")
	}
	for line := range strings.Lines(text) {
		line = strings.TrimSuffix(line, "\n")
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			if err := endFamily(); err != nil {
				return nil, err
			}
			name, h, _ := strings.Cut(rest, " ")
			if name <= family {
				return nil, fmt.Errorf("family %s after %s", name, family)
			}
			if err := checkEscapes(h); err != nil {
				return nil, fmt.Errorf("# HELP %s: %v", name, err)
			}
			family, typ, help, les, cum = name, "", h, nil, nil
			continue
		}
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, ty, _ := strings.Cut(rest, " ")
			if name != family || typ != "" || help == "" {
				return nil, fmt.Errorf("%q not right after the family's # HELP", line)
			}
			switch ty {
			case "counter", "gauge", "histogram":
			default:
				return nil, fmt.Errorf("%q: type %q", line, ty)
			}
			typ = ty
			continue
		}
		if line == "" || line[0] == '#' || typ == "" {
			return nil, fmt.Errorf("line %q: not a sample of a declared family", line)
		}
		name, labels, value, err := splitSample(line)
		if err != nil {
			return nil, err
		}
		suffix, ok := strings.CutPrefix(name, family)
		if !ok || suffix != "" && (typ != "histogram" || suffix != "_bucket" && suffix != "_sum" && suffix != "_count") ||
			suffix == "" && typ == "histogram" {
			return nil, fmt.Errorf("sample %q in family %s (%s)", line, family, typ)
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return nil, fmt.Errorf("line %q: %v", line, err)
		}
		if typ == "counter" && !(v >= 0) {
			return nil, fmt.Errorf("line %q: negative counter", line)
		}
		if suffix == "_bucket" {
			le, ok := labels["le"]
			if !ok {
				return nil, fmt.Errorf("line %q: no le", line)
			}
			b, err := strconv.ParseFloat(le, 64)
			if err != nil {
				return nil, fmt.Errorf("line %q: le: %v", line, err)
			}
			les, cum = append(les, b), append(cum, v)
		}
		key := line[:len(line)-len(value)-1]
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("series %s twice", key)
		}
		out[key] = v
	}
	return out, endFamily()
}

// splitSample splits a sample line into its name, labels (unescaped) and
// value.
func splitSample(line string) (name string, labels map[string]string, value string, err error) {
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return "", nil, "", fmt.Errorf("line %q: no name", line)
	}
	name, rest := line[:i], line[i:]
	labels = make(map[string]string)
	if rest[0] == '{' {
		rest = rest[1:]
		for rest != "" && rest[0] != '}' {
			ln, r, ok := strings.Cut(rest, `="`)
			if !ok || ln == "" || strings.ContainsAny(ln, ",{} ") {
				return "", nil, "", fmt.Errorf("line %q: label at %q", line, rest)
			}
			var v strings.Builder
			for j := 0; ; j++ {
				if j >= len(r) {
					return "", nil, "", fmt.Errorf("line %q: unterminated label value", line)
				}
				c := r[j]
				if c == '"' {
					rest = r[j+1:]
					break
				}
				if c == '\\' {
					j++
					switch {
					case j < len(r) && r[j] == 'n':
						c = '\n'
					case j < len(r) && (r[j] == '\\' || r[j] == '"'):
						c = r[j]
					default:
						return "", nil, "", fmt.Errorf("line %q: bad escape in label %s", line, ln)
					}
				}
				v.WriteByte(c)
			}
			if _, dup := labels[ln]; dup {
				return "", nil, "", fmt.Errorf("line %q: label %s twice", line, ln)
			}
			labels[ln] = v.String()
			rest = strings.TrimPrefix(rest, ",")
		}
		if rest == "" {
			return "", nil, "", fmt.Errorf("line %q: no closing brace", line)
		}
		rest = rest[1:]
	}
	value, ok := strings.CutPrefix(rest, " ")
	if !ok || value == "" || strings.Contains(value, " ") {
		return "", nil, "", fmt.Errorf("line %q: want one value after the labels", line)
	}
	return name, labels, value, nil
}

// checkEscapes checks that a help text has only the escapes \\ and \n.
func checkEscapes(s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		if i++; i == len(s) || s[i] != '\\' && s[i] != 'n' {
			return fmt.Errorf("bad escape in %q", s)
		}
	}
	return nil
}

// TestMetricsHandler serves /metrics of a host without guests: the
// servicing families exactly, and the Go and process families that the
// chaos e2e test and the soak read (go_goroutines,
// go_memstats_heap_alloc_bytes) among the others.
func TestMetricsHandler(t *testing.T) {
	d, err := hosting.New(hosting.Config{Socket: filepath.Join(t.TempDir(), "bus.sock")})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	m := metrics.New(slog.New(slog.DiscardHandler))
	m.SetDaemon(d)
	// The servicing families come from the daemon's events.
	m.Observe(&hosting.ServicingComplete{Servicing: 3, Blackout: 12300 * time.Microsecond})
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	body := rec.Body.String()
	if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(len(body)) {
		t.Errorf("Content-Length %s, body %d bytes", cl, len(body))
	}
	samples, err := parseExposition(body)
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	var govmbus, families []string
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "govmbus_") || strings.HasPrefix(line, "# HELP govmbus_") || strings.HasPrefix(line, "# TYPE govmbus_") {
			govmbus = append(govmbus, line)
		}
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			families = append(families, strings.Fields(f)[0])
		}
	}
	want := `# HELP govmbus_servicing_blackout_seconds Blackout of the servicing this process took over with: from the predecessor's pause to serving again.
# TYPE govmbus_servicing_blackout_seconds histogram
govmbus_servicing_blackout_seconds_bucket{le="0.0005"} 0
govmbus_servicing_blackout_seconds_bucket{le="0.001"} 0
govmbus_servicing_blackout_seconds_bucket{le="0.0025"} 0
govmbus_servicing_blackout_seconds_bucket{le="0.005"} 0
govmbus_servicing_blackout_seconds_bucket{le="0.01"} 0
govmbus_servicing_blackout_seconds_bucket{le="0.025"} 1
govmbus_servicing_blackout_seconds_bucket{le="0.05"} 1
govmbus_servicing_blackout_seconds_bucket{le="0.1"} 1
govmbus_servicing_blackout_seconds_bucket{le="0.25"} 1
govmbus_servicing_blackout_seconds_bucket{le="0.5"} 1
govmbus_servicing_blackout_seconds_bucket{le="1"} 1
govmbus_servicing_blackout_seconds_bucket{le="2.5"} 1
govmbus_servicing_blackout_seconds_bucket{le="5"} 1
govmbus_servicing_blackout_seconds_bucket{le="+Inf"} 1
govmbus_servicing_blackout_seconds_sum 0.0123
govmbus_servicing_blackout_seconds_count 1
# HELP govmbus_servicings_total Servicings of this host since it first started (kept across the exec).
# TYPE govmbus_servicings_total counter
govmbus_servicings_total 3
`
	if got := strings.Join(govmbus, ""); got != want {
		t.Errorf("govmbus families:\n%s\nwant:\n%s", got, want)
	}
	wantFamilies := "go_goroutines go_info go_memstats_heap_alloc_bytes go_memstats_sys_bytes go_sched_gomaxprocs_threads go_threads " +
		"govmbus_servicing_blackout_seconds govmbus_servicings_total " +
		"process_cpu_seconds_total process_max_fds process_open_fds process_resident_memory_bytes process_start_time_seconds process_virtual_memory_bytes"
	if got := strings.Join(families, " "); got != wantFamilies {
		t.Errorf("families:\n%s\nwant:\n%s", got, wantFamilies)
	}
	if samples["go_goroutines"] < 1 || samples["go_memstats_heap_alloc_bytes"] <= 0 || samples["process_open_fds"] < 1 {
		t.Errorf("go and process samples: %v", samples)
	}
}

// TestMetricsParser checks that the test's parser refuses what the
// format does not allow, so that the e2e test's checks mean something.
func TestMetricsParser(t *testing.T) {
	ok := "# HELP a_total A \\\\ help\\nline.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\",y=\"\"} 1\n" +
		"# HELP b B.\n# TYPE b histogram\nb_bucket{le=\"1\"} 1\nb_bucket{le=\"+Inf\"} 2\nb_sum 3.5\nb_count 2\n"
	if m, err := parseExposition(ok); err != nil || m[`a_total{x="q\"\\\n",y=""}`] != 1 || m["b_count"] != 2 {
		t.Fatalf("%q: %v, %v", ok, m, err)
	}
	for _, bad := range []string{
		"a 1\n",                            // no family
		"# HELP a A.\n# TYPE a gauge\na 1", // no final newline
		"# HELP a A.\n# TYPE a gauge\na{x=\"\\t\"} 1\n",                               // bad escape
		"# HELP a A.\n# TYPE a gauge\na{x=\"1} 1\n",                                   // unterminated value
		"# HELP a A.\n# TYPE a gauge\na 1\na 2\n",                                     // series twice
		"# HELP a A.\n# TYPE a gauge\nb 1\n",                                          // not the family's
		"# HELP b B.\n# TYPE b gauge\nb 1\n# HELP a A.\n# TYPE a gauge\na 1\n",        // out of order
		"# HELP a A.\n# TYPE a counter\na -1\n",                                       // negative counter
		"# HELP a A.\n# TYPE a gauge\na 1 2 3\n",                                      // timestamp and more
		"# HELP a A.\n# TYPE a histogram\na_bucket{le=\"1\"} 1\na_sum 1\na_count 1\n", // no +Inf
		"# HELP a A.\n# TYPE a histogram\na_bucket{le=\"1\"} 2\na_bucket{le=\"+Inf\"} 1\na_sum 1\na_count 1\n",
		"# HELP a A.\n# TYPE a histogram\na_bucket{le=\"+Inf\"} 2\na_sum 1\na_count 1\n",
	} {
		if _, err := parseExposition(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// echoPackets sums the echo channels' packets_total of one direction.
func echoPackets(m map[string]float64, dir string) (sum float64, n int) {
	for k, v := range m {
		if strings.HasPrefix(k, "govmbus_channel_packets_total{") && strings.Contains(k, `device="echo"`) && strings.Contains(k, `direction="`+dir+`"`) {
			sum += v
			n++
		}
	}
	return sum, n
}

// TestE2EMetrics runs the host with --metrics and a guest streaming
// through echo (and using the disk) in another process, scrapes the
// channel counters and pprof, then services the host once and scrapes the
// successor.
func TestE2EMetrics(t *testing.T) {
	bin := vmbusBinary(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(disk, make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	h := startJSONHost(t, bin, filepath.Join(dir, "bus.sock"),
		"--device", "echo", "--device", "blk="+disk, "--metrics", addr)
	if got := h.waitMsg(t, "metrics listening")["addr"]; got != addr {
		t.Fatalf("metrics listening on %v, want %s", got, addr)
	}

	// The guest: one connection streaming through echo for long enough,
	// one JSON progress line every 50ms.
	g := exec.Command(bin, "guest", "--socket", h.socket, "demo-load", "--duration", "60s", "--interval", "50ms", "--pings", "10")
	gout, err := g.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.Process.Kill()
		io.Copy(io.Discard, gout)
		g.Wait() //nolint:errcheck // killed
	})
	progress := bufio.NewScanner(gout)
	// streamed waits for a progress line with at least min packets back
	// and returns its count.
	streamed := func(min uint64) uint64 {
		t.Helper()
		for progress.Scan() {
			var l loadJSON
			if err := json.Unmarshal(progress.Bytes(), &l); err != nil {
				t.Fatalf("guest output %q: %v", progress.Text(), err)
			}
			if l.Type == "progress" && l.Packets >= min {
				return l.Packets
			}
		}
		t.Fatalf("guest stopped: %v\nhost:\n%s", progress.Err(), h.logs())
		return 0
	}

	// Every packet the guest has back went through the host's echo
	// channel both ways; the receive side counts a batch when it ends.
	want := streamed(1000)
	deadline := time.Now().Add(10 * time.Second)
	var m map[string]float64
	for {
		m = scrape(t, addr)
		in, n := echoPackets(m, "in")
		out, _ := echoPackets(m, "out")
		if n == 1 && in >= float64(want) && out >= float64(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("echo channels %d, packets in %v out %v; the guest streamed %d", n, in, out, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, name := range []string{"govmbus_channel_bytes_total", "govmbus_channel_ring_used_bytes", "govmbus_channel_ring_size_bytes",
		"govmbus_channel_signals_total", "govmbus_channel_completions_pending", "govmbus_channel_queued_total"} {
		found := false
		for k := range m {
			found = found || strings.HasPrefix(k, name+"{")
		}
		if !found {
			t.Errorf("no %s in /metrics", name)
		}
	}
	// The Go and process families: the chaos e2e test and the soak read
	// some; the start time is the process's, which the exec keeps.
	for _, name := range []string{"go_goroutines", "go_threads", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes",
		"process_open_fds", "process_cpu_seconds_total", "process_start_time_seconds"} {
		if m[name] <= 0 {
			t.Errorf("%s %v", name, m[name])
		}
	}
	started := m["process_start_time_seconds"]
	if m["govmbus_servicings_total"] != 0 || m["govmbus_servicing_blackout_seconds_count"] != 0 {
		t.Errorf("before servicing: servicings %v, blackouts %v", m["govmbus_servicings_total"], m["govmbus_servicing_blackout_seconds_count"])
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/debug/pprof/: %s", resp.Status)
	}

	// One servicing: the successor listens again on the same address.
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	h.waitMsg(t, "servicing complete")
	if got := h.waitMsg(t, "metrics listening")["addr"]; got != addr {
		t.Fatalf("successor's metrics on %v, want %s", got, addr)
	}
	m = scrape(t, addr)
	if m["govmbus_servicings_total"] != 1 || m["govmbus_servicing_blackout_seconds_count"] != 1 {
		t.Errorf("after servicing: servicings %v, blackouts %v", m["govmbus_servicings_total"], m["govmbus_servicing_blackout_seconds_count"])
	}
	if s := m["govmbus_servicing_blackout_seconds_sum"]; s <= 0 || s > 30 {
		t.Errorf("blackout %vs", s)
	}
	if st := m["process_start_time_seconds"]; st != started {
		t.Errorf("process_start_time_seconds %v after the exec, %v before", st, started)
	}
	// The guest streams on through the restored channel.
	base, _ := echoPackets(m, "in")
	streamed(want + 1000)
	deadline = time.Now().Add(10 * time.Second)
	for {
		in, n := echoPackets(scrape(t, addr), "in")
		if n == 1 && in > base {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after servicing: echo channels %d, packets in %v (was %v)", n, in, base)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestE2EMetricsAddressInUse: a host whose --metrics address is taken
// does not start (exit 1) and leaves no socket; before, it served on
// without the metrics it was asked for, with only a log line.
func TestE2EMetricsAddressInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	socket := filepath.Join(t.TempDir(), "bus.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, vmbusBinary(t), "host", "--socket", socket, "--device", "echo", "--metrics", l.Addr().String()).CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("exit %d, %s; want 1, address in use", code, out)
	}
	if _, err := os.Lstat(socket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
}
