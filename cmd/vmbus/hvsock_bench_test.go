package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/hvsock"
	"github.com/govmbus/govmbus/internal/testbus"
)

// relayBench is a `vmbus host` process with an echo device and a relay of
// port 5000 to a local server of this process (echo with a nil sum, or a
// digest that reads to the end and answers with sum's), and this process
// as its guest: a relayed byte crosses the two processes twice. The
// returned cpu reads the CPU time both processes have used so far.
func relayBench(b *testing.B, sum func() hash.Hash) (cl *guest.Client, c *hvsock.Conn, cpu func() time.Duration) {
	b.Helper()
	dir := b.TempDir()
	localServer(b, filepath.Join(dir, "local.sock"), sum)
	socket, host, _ := startRelayHostProcess(b, dir, "--device", "echo", "--hvsock-relay", "5000=unix:"+filepath.Join(dir, "local.sock"))
	cpu = func() time.Duration { return testbus.CPUTime(b) + processCPU(b, host.Process.Pid) }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The socket's file appears at its bind, a moment before its listen:
	// a connect in between is refused.
	cl, err := guest.Dial(ctx, socket, guest.Config{MemorySize: guestMemory})
	for errors.Is(err, syscall.ECONNREFUSED) && ctx.Err() == nil {
		runtime.Gosched()
		cl, err = guest.Dial(ctx, socket, guest.Config{MemorySize: guestMemory})
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cl.Close() })
	c, err = hvsock.DialContext(ctx, cl, hvsock.ServiceForPort(5000))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return cl, c, cpu
}

// processCPU is the CPU time process pid used so far, user and system,
// from /proc in clock ticks (USER_HZ, 100 on Linux): over a run of
// seconds, a 10 ms tick is a fraction of a percent.
func processCPU(b *testing.B, pid int) time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command's closing parenthesis, from state
	// (field 3): utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:]))
	if i < 0 || len(f) < 13 {
		b.Fatalf("/proc/%d/stat: %q", pid, stat)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// reportCPU reports the CPU time of both processes per op since cpu0:
// on a shared machine a steadier figure than the wall clock's.
func reportCPU(b *testing.B, cpu func() time.Duration, cpu0 time.Duration) {
	b.ReportMetric(float64(cpu()-cpu0)/float64(b.N), "cpu-ns/op")
}

// castagnoli is the relay stream's check of every byte: CRC-32C, which
// this CPU computes at tens of GB/s. SHA-256 (1.5 GB/s a core here),
// computed twice in this process (the writer's and the local server's),
// took three quarters of the process's CPU and held the stream under
// 0.5 GB/s by itself.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func newCRC32C() hash.Hash { return crc32.New(castagnoli) }

// BenchmarkHVSockRelayStream: 64 KiB writes from the guest through the
// relay to a local server that checks them; the answer at the end is the
// CRC-32C of every byte.
func BenchmarkHVSockRelayStream(b *testing.B) {
	_, c, cpu := relayBench(b, newCRC32C)
	buf := make([]byte, 64<<10)
	h := newCRC32C()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	cpu0 := cpu()
	for i := 0; b.Loop(); i++ {
		buf[0] = byte(i) // no two writes alike
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		h.Write(buf)
	}
	b.StopTimer()
	reportCPU(b, cpu, cpu0)
	c.CloseWrite()
	got, err := io.ReadAll(c)
	if want := hex.EncodeToString(h.Sum(nil)); err != nil || string(got) != want {
		b.Fatalf("local server's digest %q, %v; want %s", got, err, want)
	}
}

// BenchmarkHVSockRelayRoundTrip: one byte to the local echo server
// through the relay and back.
func BenchmarkHVSockRelayRoundTrip(b *testing.B) {
	_, c, cpu := relayBench(b, nil)
	buf := make([]byte, 1)
	b.SetBytes(1)
	b.ReportAllocs()
	cpu0 := cpu()
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu, cpu0)
}

// BenchmarkHVSockPingRoundTrip is `vmbus guest ping`'s round trip on the
// same two processes, for the ratio to the relay's.
func BenchmarkHVSockPingRoundTrip(b *testing.B) {
	cl, _, cpu := relayBench(b, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ec, err := echo.Open(ctx, cl, echo.ClientConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer ec.Close()
	b.SetBytes(1)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpu()
	res, err := ec.Ping(context.Background(), b.N, 0, 5*time.Second)
	b.StopTimer()
	reportCPU(b, cpu, cpu0)
	if err != nil || res.Lost+res.Corrupted != 0 {
		b.Fatalf("%v %+v", err, res)
	}
}
