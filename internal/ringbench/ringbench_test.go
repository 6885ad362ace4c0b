package ringbench

import (
	"testing"
)

func TestRunDeliversEveryPacket(t *testing.T) {
	for _, c := range []Config{
		{Payload: 64, Count: 20000, RingSize: 4096},
		{Payload: 64, Count: 20000, RingSize: 4096, Batch: 3},
		{Payload: 1000, Count: 5000, RingSize: 8192, ZeroCopy: true},
		{Payload: 64, Count: 20000, RingSize: 4096, Signal: true},
		{Payload: 3000, Count: 3000, RingSize: 8192, Signal: true, Batch: 1},
		{Payload: 0, Count: 100, RingSize: 4096},
		{Payload: 64, Count: 20000, RingSize: 4096, RoundTrip: true},
		{Payload: 64, Count: 20000, RingSize: 4096, RoundTrip: true, Signal: true},
		{Payload: 3000, Count: 3000, RingSize: 8192, RoundTrip: true, Signal: true},
		{Payload: 4000, Count: 500, RingSize: 4096, RoundTrip: true, Signal: true},
	} {
		res, err := Run(c)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if res.Packets != c.Count || res.Checksum != ExpectedChecksum(c) {
			t.Fatalf("%+v: %d packets, checksum %d, want %d", c, res.Packets, res.Checksum, ExpectedChecksum(c))
		}
		if c.Signal && res.Signals == 0 {
			t.Fatalf("%+v: no signals counted", c)
		}
		if !c.Signal && res.Signals != 0 {
			t.Fatalf("%+v: %d signals while busy-polling", c, res.Signals)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{Payload: -1, Count: 1, RingSize: 4096},
		{Payload: 1, Count: 0, RingSize: 4096},
		{Payload: 1, Count: 1, RingSize: 4000},
		{Payload: 1, Count: 1, RingSize: 4096, Batch: -1},
		{Payload: 4065, Count: 1, RingSize: 4096},
		{Payload: 64, Count: 1, RingSize: 4096, RoundTrip: true, Batch: 2},
		{Payload: 64, Count: 1, RingSize: 4096, RoundTrip: true, ZeroCopy: true},
		{Payload: 15, Count: 1, RingSize: 4096, RoundTrip: true},
	} {
		if _, err := Run(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func BenchmarkRing(b *testing.B) {
	for _, size := range []int{64, 1024, 16384, 65536} {
		b.Run(sizeName(size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			res, err := Run(Config{Payload: size, Count: b.N, RingSize: 262144})
			if err != nil {
				b.Fatal(err)
			}
			_ = res
		})
	}
}

// BenchmarkRoundTrip is BenchmarkRing's round-trip form with eventfd
// signals: the bare-ring figure for an echo stream across a channel.
func BenchmarkRoundTrip(b *testing.B) {
	for _, size := range []int{64, 16384} {
		b.Run(sizeName(size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			if _, err := Run(Config{Payload: size, Count: b.N, RingSize: 262144, RoundTrip: true, Signal: true}); err != nil {
				b.Fatal(err)
			}
		})
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1024:
		return "payload=" + itoa(n/1024) + "KiB"
	}
	return "payload=" + itoa(n) + "B"
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
