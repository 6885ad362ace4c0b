package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/hvsock"
)

// relayBench is a `vmbus host` process with an echo device and a relay of
// port 5000 to a local server of this process (echo, or a digest that
// reads to the end and answers with the SHA-256), and this process as
// its guest: a relayed byte crosses the two processes twice.
func relayBench(b *testing.B, digest bool) (*guest.Client, *hvsock.Conn) {
	b.Helper()
	dir := b.TempDir()
	localServer(b, filepath.Join(dir, "local.sock"), digest)
	socket := startRelayHost(b, dir, "--device", "echo", "--hvsock-relay", "5000=unix:"+filepath.Join(dir, "local.sock"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := guest.Dial(ctx, socket, guest.Config{MemorySize: guestMemory})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cl.Close() })
	c, err := hvsock.DialContext(ctx, cl, hvsock.ServiceForPort(5000))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return cl, c
}

// BenchmarkHVSockRelayStream: 64 KiB writes from the guest through the
// relay to a local server that hashes them; the answer at the end is the
// SHA-256 of every byte.
func BenchmarkHVSockRelayStream(b *testing.B) {
	_, c := relayBench(b, true)
	buf := make([]byte, 64<<10)
	h := sha256.New()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf[0] = byte(i) // no two writes alike
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		h.Write(buf)
	}
	b.StopTimer()
	c.CloseWrite()
	got, err := io.ReadAll(c)
	if want := hex.EncodeToString(h.Sum(nil)); err != nil || string(got) != want {
		b.Fatalf("local server's digest %q, %v; want %s", got, err, want)
	}
}

// BenchmarkHVSockRelayRoundTrip: one byte to the local echo server
// through the relay and back.
func BenchmarkHVSockRelayRoundTrip(b *testing.B) {
	_, c := relayBench(b, false)
	buf := make([]byte, 1)
	b.SetBytes(1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHVSockPingRoundTrip is `vmbus guest ping`'s round trip on the
// same two processes, for the ratio to the relay's.
func BenchmarkHVSockPingRoundTrip(b *testing.B) {
	cl, _ := relayBench(b, false)
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
	res, err := ec.Ping(context.Background(), b.N, 0, 5*time.Second)
	b.StopTimer()
	if err != nil || res.Lost+res.Corrupted != 0 {
		b.Fatalf("%v %+v", err, res)
	}
}
