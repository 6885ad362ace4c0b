package promtext

import (
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestWriter(t *testing.T) {
	var w Writer
	ch := NewLabels("guest", "1", "channel", "14", "device", "echo")
	w.Family("x_packets_total", "Packets, by direction.", Counter)
	w.Sample("x_packets_total", ch, 19500000, "direction", "in")
	w.Sample("x_packets_total", ch, 3, "direction", "out")
	w.Family("x_ring_used_bytes", "Bytes in a ring.\nA second line, a \\ and a \"quote\".", Gauge)
	w.Sample("x_ring_used_bytes", Labels{}, 0.25)
	w.Family("x_stopped", "Why.", Gauge)
	w.Sample("x_stopped", NewLabels("device", `a\b"c`+"\nd"), 1, "reason", `ring: "bad" \ here`+"\n")
	h := NewHist([]float64{.0005, .01, 1, 2.5})
	h.Observe(.0123)
	h.Observe(.01) // the upper bound is inclusive
	h.Observe(7)
	w.Histogram("x_blackout_seconds", "Blackouts.", h)

	want := `# HELP x_packets_total Packets, by direction.
# TYPE x_packets_total counter
x_packets_total{guest="1",channel="14",device="echo",direction="in"} 19500000
x_packets_total{guest="1",channel="14",device="echo",direction="out"} 3
# HELP x_ring_used_bytes Bytes in a ring.\nA second line, a \\ and a "quote".
# TYPE x_ring_used_bytes gauge
x_ring_used_bytes 0.25
# HELP x_stopped Why.
# TYPE x_stopped gauge
x_stopped{device="a\\b\"c\nd",reason="ring: \"bad\" \\ here\n"} 1
# HELP x_blackout_seconds Blackouts.
# TYPE x_blackout_seconds histogram
x_blackout_seconds_bucket{le="0.0005"} 0
x_blackout_seconds_bucket{le="0.01"} 1
x_blackout_seconds_bucket{le="1"} 2
x_blackout_seconds_bucket{le="2.5"} 2
x_blackout_seconds_bucket{le="+Inf"} 3
x_blackout_seconds_sum 7.0223
x_blackout_seconds_count 3
`
	if got := string(w.Buf); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestAppendFloat(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{
		{0, "0"}, {math.Copysign(0, -1), "0"}, {1, "1"}, {-3, "-3"}, {19500000, "19500000"},
		{1 << 53, "9.007199254740992e+15"}, {0.0005, "0.0005"}, {2.5, "2.5"}, {1e-7, "1e-07"},
		{math.Inf(1), "+Inf"}, {math.Inf(-1), "-Inf"}, {math.NaN(), "NaN"},
	} {
		got := string(AppendFloat(nil, c.v))
		if got != c.want {
			t.Errorf("AppendFloat(%v) = %q, want %q", c.v, got, c.want)
		}
		if f, err := strconv.ParseFloat(strings.TrimPrefix(got, "+"), 64); err != nil || f != c.v && !math.IsNaN(c.v) {
			t.Errorf("%q reads back as %v, %v", got, f, err)
		}
	}
}

func TestInvalidNamesPanic(t *testing.T) {
	for _, f := range []func(){
		func() { new(Writer).Family("2x", "", Gauge) },
		func() { new(Writer).Family("a-b", "", Gauge) },
		func() { new(Writer).Sample("", Labels{}, 1) },
		//lint:ignore SA5012 the odd count is the misuse under test
		func() { new(Writer).Sample("x", Labels{}, 1, "le") },
		func() { NewLabels("a:b", "v") },
		func() { NewLabels("__name__", "v") },
		//lint:ignore SA5012 the odd count is the misuse under test
		func() { NewLabels("a") },
		func() { NewHist([]float64{1, 1}) },
		func() { NewHist([]float64{1, math.Inf(1)}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		}()
	}
}

func TestParseProcStat(t *testing.T) {
	// A command name with a space and a ')' of its own.
	line := "4242 (vm bus) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 987654 1358954496 5120 18446744073709551615 1 1 0 0 0 0 0 0 2143420159 0 0 0 17 1 0 0 0 0 0\n"
	st, err := parseProcStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{utime: 250, stime: 75, starttime: 987654, vsize: 1358954496, rss: 5120}
	if *st != want {
		t.Errorf("got %+v, want %+v", *st, want)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1 2 3", "1 (x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 -250 75"} {
		if st, err := parseProcStat([]byte(bad)); err == nil || st != nil {
			t.Errorf("parseProcStat(%q) = %v, %v; want an error", bad, st, err)
		}
	}
}

// TestGoAndProcess checks the runtime families against what the process
// itself says.
func TestGoAndProcess(t *testing.T) {
	var w Writer
	w.Go()
	if err := w.Process(); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	var names []string
	for line := range strings.Lines(string(w.Buf)) {
		line = strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(line, "# TYPE ") {
			names = append(names, strings.Fields(line)[2])
		}
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got[line[:i]] = v
	}
	wantNames := []string{"go_goroutines", "go_info", "go_memstats_heap_alloc_bytes", "go_memstats_sys_bytes", "go_sched_gomaxprocs_threads", "go_threads",
		"process_cpu_seconds_total", "process_max_fds", "process_open_fds", "process_resident_memory_bytes", "process_start_time_seconds", "process_virtual_memory_bytes"}
	if strings.Join(names, " ") != strings.Join(wantNames, " ") {
		t.Errorf("families %v, want %v", names, wantNames)
	}
	if got["go_goroutines"] < 1 || got["go_threads"] < 1 || got["go_memstats_heap_alloc_bytes"] <= 0 ||
		got["go_memstats_sys_bytes"] < got["go_memstats_heap_alloc_bytes"] || got["go_sched_gomaxprocs_threads"] < 1 {
		t.Errorf("go families: %v", got)
	}
	if got[`go_info{version="`+runtime.Version()+`"}`] != 1 {
		t.Errorf("no go_info for %s: %v", runtime.Version(), got)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	if n := got["process_open_fds"]; n < float64(len(fds)-2) || n > float64(len(fds)+2) {
		t.Errorf("process_open_fds %v, /proc/self/fd lists %d", n, len(fds))
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.Fields(v)[0], 64)
			if rss := got["process_resident_memory_bytes"]; rss < kb*1024/2 || rss > kb*1024*2 {
				t.Errorf("process_resident_memory_bytes %v, VmRSS %v kB", rss, kb)
			}
		}
	}
	if st := got["process_start_time_seconds"]; st < 1e9 || st > float64(time.Now().Unix()+1) {
		t.Errorf("process_start_time_seconds %v", st)
	}
	if got["process_cpu_seconds_total"] < 0 || got["process_max_fds"] < 1 || got["process_virtual_memory_bytes"] < got["process_resident_memory_bytes"] {
		t.Errorf("process families: %v", got)
	}
}
