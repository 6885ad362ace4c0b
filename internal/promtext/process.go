package promtext

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"syscall"
)

// Go writes a few go_* families of the official client's Go collector,
// under its names and with its meanings: go_goroutines, go_info,
// go_memstats_heap_alloc_bytes and go_memstats_sys_bytes (from
// runtime/metrics, without stopping the world), go_sched_gomaxprocs_threads
// and go_threads. The families come in name order.
func (w *Writer) Go() {
	samples := [...]metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/total:bytes"},
	}
	metrics.Read(samples[:])
	threads, _ := runtime.ThreadCreateProfile(nil)

	w.Family("go_goroutines", "Number of goroutines that currently exist.", Gauge)
	w.Sample("go_goroutines", Labels{}, float64(runtime.NumGoroutine()))
	w.Family("go_info", "Information about the Go environment.", Gauge)
	w.Sample("go_info", Labels{}, 1, "version", runtime.Version())
	w.Family("go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and currently in use. Equals to /memory/classes/heap/objects:bytes.", Gauge)
	w.Sample("go_memstats_heap_alloc_bytes", Labels{}, float64(uint64Value(samples[0])))
	w.Family("go_memstats_sys_bytes", "Number of bytes obtained from system. Equals to /memory/classes/total:bytes.", Gauge)
	w.Sample("go_memstats_sys_bytes", Labels{}, float64(uint64Value(samples[1])))
	w.Family("go_sched_gomaxprocs_threads", "The current runtime.GOMAXPROCS setting, or the number of operating system threads that can execute user-level Go code simultaneously.", Gauge)
	w.Sample("go_sched_gomaxprocs_threads", Labels{}, float64(runtime.GOMAXPROCS(0)))
	w.Family("go_threads", "Number of OS threads created.", Gauge)
	w.Sample("go_threads", Labels{}, float64(threads))
}

func uint64Value(s metrics.Sample) uint64 {
	if s.Value.Kind() != metrics.KindUint64 {
		return 0 // not in this runtime
	}
	return s.Value.Uint64()
}

// Process writes the process_* families of the official client's process
// collector that the host has use for, read where that collector reads
// them (/proc/self/stat, /proc/self/fd, /proc/stat's btime; the open-file
// limit from getrlimit, which /proc/self/limits shows): process_cpu_seconds_total,
// process_max_fds, process_open_fds, process_resident_memory_bytes,
// process_start_time_seconds and process_virtual_memory_bytes, in name
// order. A family it cannot read is left out and its error returned.
func (w *Writer) Process() error {
	var errs []error
	st, err := readSelfStat()
	if err != nil {
		errs = append(errs, err)
	}
	if err == nil {
		w.Family("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", Counter)
		w.Sample("process_cpu_seconds_total", Labels{}, float64(st.utime+st.stime)/userHZ)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		w.Family("process_max_fds", "Maximum number of open file descriptors.", Gauge)
		w.Sample("process_max_fds", Labels{}, float64(lim.Cur))
	} else {
		errs = append(errs, fmt.Errorf("getrlimit: %w", err))
	}
	if n, err := openFDs(); err == nil {
		w.Family("process_open_fds", "Number of open file descriptors.", Gauge)
		w.Sample("process_open_fds", Labels{}, float64(n))
	} else {
		errs = append(errs, err)
	}
	if st != nil {
		w.Family("process_resident_memory_bytes", "Resident memory size in bytes.", Gauge)
		w.Sample("process_resident_memory_bytes", Labels{}, float64(st.rss*uint64(os.Getpagesize())))
		if bt, err := bootTime(); err == nil {
			w.Family("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", Gauge)
			w.Sample("process_start_time_seconds", Labels{}, float64(bt)+float64(st.starttime)/userHZ)
		} else {
			errs = append(errs, err)
		}
		w.Family("process_virtual_memory_bytes", "Virtual memory size in bytes.", Gauge)
		w.Sample("process_virtual_memory_bytes", Labels{}, float64(st.vsize))
	}
	return errors.Join(errs...)
}

// userHZ is the unit of the clock-tick fields of /proc/PID/stat: USER_HZ
// is 100 on every Linux architecture Go runs on (the official client's
// procfs assumes it too).
const userHZ = 100

// procStat is what Process needs of /proc/self/stat.
type procStat struct {
	utime, stime, starttime uint64 // clock ticks
	vsize                   uint64 // bytes
	rss                     uint64 // pages
}

func readSelfStat() (*procStat, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return nil, err
	}
	return parseProcStat(b)
}

// parseProcStat parses a /proc/PID/stat line. The command name (field 2)
// is in parentheses and may hold spaces and parentheses itself: the fields
// that follow start after the last ')'.
func parseProcStat(b []byte) (*procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/self/stat: no command name in %q", b)
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3 (state)
	const first = 3
	field := func(n int) (uint64, error) {
		if n-first >= len(f) {
			return 0, fmt.Errorf("/proc/self/stat: %d fields, want %d", len(f)+first-1, n)
		}
		v, err := strconv.ParseUint(string(f[n-first]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/self/stat field %d: %w", n, err)
		}
		return v, nil
	}
	var st procStat
	var err error
	for _, x := range []struct {
		n int
		v *uint64
	}{{14, &st.utime}, {15, &st.stime}, {22, &st.starttime}, {23, &st.vsize}, {24, &st.rss}} {
		if *x.v, err = field(x.n); err != nil {
			return nil, err
		}
	}
	return &st, nil
}

// openFDs counts the process's open descriptors: the size of
// /proc/self/fd where Linux reports it (6.2 and later), else its entries
// (the descriptor that lists them included, as in the official client).
func openFDs() (int, error) {
	if fi, err := os.Stat("/proc/self/fd"); err == nil && fi.Size() > 0 {
		return int(fi.Size()), nil
	}
	f, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	return len(names), err
}

// bootTime is /proc/stat's btime, read once: it does not change.
var bootTime = sync.OnceValues(func() (uint64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			return strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
		}
	}
	return 0, errors.New("/proc/stat: no btime")
})
