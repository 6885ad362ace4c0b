package hvsock

import (
	"io"
	"testing"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/testbus"
)

// BenchmarkStream streams 64 KiB writes from the guest to the host, in
// one process, through both ends' Conns.
func BenchmarkStream(b *testing.B) {
	r := &rig{srv: NewServer(Config{})}
	b.Cleanup(func() { r.srv.Close() })
	r.Bus = testbus.New(b, testbus.Config{Host: host.Config{OnConnect: r.srv.OnConnect}, Guest: guest.Config{}})
	l, err := r.srv.Listen(svc5000)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	gc, err := DialContext(testbus.Context(b), r.Client, svc5000)
	if err != nil {
		b.Fatal(err)
	}
	c, err := l.Accept()
	if err != nil {
		b.Fatal(err)
	}
	hc := c.(*Conn)
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, hc)
		done <- err
	}()
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	cpu0 := testbus.CPUTime(b)
	for b.Loop() {
		if _, err := gc.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	// Both ends' CPU: the bus's share of BenchmarkHVSockRelayStream's.
	b.ReportMetric(float64(testbus.CPUTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	gs, hs := chanOf(b, gc).Stats(), chanOf(b, hc).Stats()
	b.ReportMetric(float64(gs.SignalsSent)/float64(b.N), "guest-signals/op")
	b.ReportMetric(float64(hs.SignalsSent)/float64(b.N), "host-signals/op")
	gc.CloseWrite()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	hc.Close()
	gc.Close()
}
