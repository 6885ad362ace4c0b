package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govmbus/govmbus/servicing"
)

// BenchmarkServicing1 and BenchmarkServicing64 measure the blackout of a
// servicing (SIGHUP until the successor runs again) of a host with echo
// and blk and 1 guest, or 32 guests each with both channels open (64
// channels), under echo and disk traffic. BenchmarkServicing64OneGuest
// has the 64 channels in one guest: 63 echo channels, all streaming, and
// blk. Each runs 20 servicings per b.N and reports the blackout's p50 and
// p99 and each phase's p50 (from the host's "servicing complete" log
// line). Benchmarks only: go test -run '^$' -bench Servicing ./cmd/vmbus/.
func BenchmarkServicing1(b *testing.B)          { benchServicing(b, 1, 1, "exec") }
func BenchmarkServicing64(b *testing.B)         { benchServicing(b, 32, 1, "exec") }
func BenchmarkServicing64OneGuest(b *testing.B) { benchServicing(b, 1, 63, "exec") }

// BenchmarkServicingSpawn1, BenchmarkServicingSpawn64 and
// BenchmarkServicingSpawn64OneGuest are the same with --servicing spawn:
// the successor starts up before the pause and takes the handover over a
// socket.
func BenchmarkServicingSpawn1(b *testing.B)          { benchServicing(b, 1, 1, "spawn") }
func BenchmarkServicingSpawn64(b *testing.B)         { benchServicing(b, 32, 1, "spawn") }
func BenchmarkServicingSpawn64OneGuest(b *testing.B) { benchServicing(b, 1, 63, "spawn") }

// BenchmarkServicingSpawnRT1, …SpawnRT64, …SpawnRT64OneGuest and
// BenchmarkServicingRT64 add --rt-blackout: each blackout at real-time
// priority. They need CAP_SYS_NICE (or RLIMIT_RTPRIO), and are skipped
// without.
func BenchmarkServicingSpawnRT1(b *testing.B) { benchServicing(b, 1, 1, "spawn", "--rt-blackout") }
func BenchmarkServicingSpawnRT64(b *testing.B) {
	benchServicing(b, 32, 1, "spawn", "--rt-blackout")
}
func BenchmarkServicingSpawnRT64OneGuest(b *testing.B) {
	benchServicing(b, 1, 63, "spawn", "--rt-blackout")
}
func BenchmarkServicingRT64(b *testing.B) { benchServicing(b, 32, 1, "exec", "--rt-blackout") }

// benchServicing runs guests guest processes against a host with echos
// echo devices and a blk disk, serviced by mode (--servicing) with more
// host flags; each guest streams on every echo channel.
func benchServicing(b *testing.B, guests, echos int, mode string, flags ...string) {
	if slices.Contains(flags, "--rt-blackout") {
		if err := servicing.Boost(); err != nil {
			b.Skipf("--rt-blackout needs the privilege to boost: %v", err)
		}
		servicing.Unboost() //nolint:errcheck // probed only
	}
	bin := benchBinary(b)
	dir := b.TempDir()
	socket, disk := filepath.Join(dir, "bus.sock"), filepath.Join(dir, "disk.img")
	if err := os.WriteFile(disk, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.Truncate(disk, 8<<20); err != nil {
		b.Fatal(err)
	}
	args := append([]string{"host", "--socket", socket, "--log-format", "json", "--servicing", mode}, flags...)
	for range echos {
		args = append(args, "--device", "echo")
	}
	host := exec.Command(bin, append(args, "--device", "blk="+disk)...)
	stderr, err := host.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := host.Start(); err != nil {
		b.Fatal(err)
	}
	lines := make(chan logLine, 256)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var l logLine
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				lines <- l
			}
		}
		io.Copy(io.Discard, stderr)
		close(lines)
	}()
	defer func() {
		host.Process.Signal(syscall.SIGTERM)
		host.Wait()
	}()
	wait := func(msg string) logLine {
		timeout := time.After(30 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					b.Fatalf("host exited before %q", msg)
				}
				if l["msg"] == msg {
					return l
				}
				if l["level"] == "ERROR" || l["level"] == "WARN" {
					b.Fatalf("host: %v", l)
				}
			case <-timeout:
				b.Fatalf("no %q from the host", msg)
			}
		}
	}
	wait("host listening")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var loads []*exec.Cmd
	for range guests {
		g := exec.CommandContext(ctx, bin, "guest", "--socket", socket, "demo-load", "--duration", "10m", "--channels", fmt.Sprint(echos),
			"--interval", "1h", "--pings", "10", "--chunk", "5000", "--disk-chunk", "65536", "--payload", "200")
		g.Stdout, g.Stderr = io.Discard, io.Discard
		if err := g.Start(); err != nil {
			b.Fatal(err)
		}
		loads = append(loads, g)
	}
	defer func() {
		cancel()
		for _, g := range loads {
			g.Wait()
		}
	}()
	time.Sleep(time.Duration(500+20*guests+20*echos) * time.Millisecond) // every guest has its channels open

	var blackouts []float64
	phases := map[string][]float64{}
	count := 0
	b.ResetTimer()
	for range b.N {
		for range 20 {
			count++
			if err := host.Process.Signal(syscall.SIGHUP); err != nil {
				b.Fatal(err)
			}
			l := wait("servicing complete")
			if l["servicing"] != float64(count) || l["exec"] != true {
				b.Fatalf("servicing %v exec %v, want %d by exec", l["servicing"], l["exec"], count)
			}
			if ch, want := l["channels"].(float64), guests*(echos+1); guests*echos > 1 && ch < float64(want) {
				b.Fatalf("%v channels restored, want %d", ch, want)
			}
			blackouts = append(blackouts, l["blackout_ms"].(float64))
			if p, ok := l["phases_ms"].(map[string]any); ok {
				for k, v := range p {
					phases[k] = append(phases[k], v.(float64))
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	b.StopTimer()
	for i, g := range loads {
		if g.ProcessState != nil {
			b.Fatalf("guest %d exited early: %v", i, g.ProcessState)
		}
	}
	b.ReportMetric(quantile(blackouts, 0.5), "p50_ms")
	b.ReportMetric(quantile(blackouts, 0.99), "p99_ms")
	names := make([]string, 0, len(phases))
	for k := range phases {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		b.ReportMetric(quantile(phases[k], 0.5), k+"_p50_ms")
	}
	b.Logf("%d guests with %d echo channels each, %d servicings: blackouts %v", guests, echos, len(blackouts), blackouts)
}

// quantile is the q-quantile of v (nearest rank).
func quantile(v []float64, q float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// benchBinary builds the CLI once for the benchmarks, as a static binary
// (CGO_ENABLED=0: nothing in it needs cgo, and without the dynamic loader
// every servicing's exec starts about a millisecond sooner; README
// "Servicing").
func benchBinary(b *testing.B) string {
	b.Helper()
	benchBuildOnce.Do(func() {
		benchBinDir, benchBuildErr = os.MkdirTemp("", "vmbus-bench-")
		if benchBuildErr != nil {
			return
		}
		benchBinPath = filepath.Join(benchBinDir, "vmbus")
		cmd := exec.Command("go", "build", "-o", benchBinPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			benchBuildErr = fmt.Errorf("%s", out)
		}
	})
	if benchBuildErr != nil {
		b.Fatalf("build: %v", benchBuildErr)
	}
	return benchBinPath
}

var (
	benchBuildOnce sync.Once
	benchBinDir    string
	benchBinPath   string
	benchBuildErr  error
)
