package soak

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// sampleProcess reads pid's VmRSS and Threads from /proc/PID/status and
// counts /proc/PID/fd; with metricsAddr, the goroutines from its
// go_goroutines metric (-1 if that fails: a scrape during a blackout is
// refused).
func sampleProcess(pid int, metricsAddr string) Sample {
	s := Sample{Goroutines: -1}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(l, ":")
			f := strings.Fields(v)
			if len(f) == 0 {
				continue
			}
			n, _ := strconv.Atoi(f[0])
			switch k {
			case "VmRSS":
				s.RSSMiB = float64(n) / 1024 // kB
			case "Threads":
				s.Threads = n
			}
		}
	}
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.FDs = len(fds)
	}
	if metricsAddr != "" {
		s.Goroutines = scrapeGoroutines(metricsAddr)
	}
	return s
}

var scrapeClient = &http.Client{Timeout: 2 * time.Second}

// scrapeGoroutines is the go_goroutines sample of the /metrics at addr, or
// -1.
func scrapeGoroutines(addr string) int {
	resp, err := scrapeClient.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			if n, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				return int(n)
			}
		}
	}
	return -1
}
