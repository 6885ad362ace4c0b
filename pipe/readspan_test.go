package pipe

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/internal/testbus"
)

// waitFIN waits until c has received the peer's end of stream, and with
// it every packet sent before. It takes c's wake-ups: no Read may wait
// meanwhile.
func waitFIN(t *testing.T, c *Conn) {
	t.Helper()
	timeout := time.After(testbus.Timeout)
	for {
		c.rmu.Lock()
		fin := c.rfin
		c.rmu.Unlock()
		if fin {
			return
		}
		select {
		case <-c.rwake:
		case <-timeout:
			t.Fatal("the end of stream did not come")
		}
	}
}

// In byte mode one Read takes data from as many held packets as its
// buffer holds (a reader with a large buffer does not pay a call per
// packet), ends inside a packet when the buffer does, and completes the
// packets it read to their end, and only those.
func TestReadSpansPackets(t *testing.T) {
	r := newRig(t, rigConfig{mode: channel.PipeByte, server: Config{MaxPackets: 8}})
	parts := [][]byte{[]byte("abc"), []byte("defgh"), []byte("ij"), []byte("klmnop")}
	for _, p := range parts {
		if _, err := r.client.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	must(t, r.client.CloseWrite())
	waitFIN(t, r.server)
	want := bytes.Join(parts, nil)

	buf := make([]byte, 9)
	n, err := r.server.Read(buf)
	if err != nil || string(buf[:n]) != string(want[:9]) {
		t.Fatalf("first Read: %q, %v; want %q (three packets, the last in part)", buf[:n], err, want[:9])
	}
	// Exact between the receive loop's batches (channel.Outstanding):
	// the end may have come in a batch still running.
	testbus.Eventually(t, "2 packets held after the first Read (the one read in part and the last)", func() bool {
		return r.server.Channel().Outstanding() == 2
	})
	big := make([]byte, 64)
	n, err = r.server.Read(big)
	if err != nil || string(big[:n]) != string(want[9:]) {
		t.Fatalf("second Read: %q, %v; want %q (the rest of two packets)", big[:n], err, want[9:])
	}
	if _, err := r.server.Read(big); err != io.EOF {
		t.Fatalf("third Read: %v, want io.EOF", err)
	}
	testbus.Eventually(t, "no packet held after the end", func() bool { return r.server.Channel().Outstanding() == 0 })
}

// Message mode keeps one message a Read, whatever the buffer holds.
func TestReadMessageOneAtATime(t *testing.T) {
	r := newRig(t, rigConfig{mode: channel.PipeMessage})
	for _, m := range []string{"one", "two"} {
		if _, err := r.client.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	must(t, r.client.CloseWrite())
	waitFIN(t, r.server)
	buf := make([]byte, 64)
	for _, want := range []string{"one", "two"} {
		n, err := r.server.Read(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("Read: %q, %v; want %q", buf[:n], err, want)
		}
	}
}
