package pipe

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
)

// stream writes total bytes of a seeded random stream to w in
// random-sized writes, then half-closes, and returns the stream's
// SHA-256.
func stream(w *Conn, total int, seed uint64) ([32]byte, error) {
	rng := rand.New(rand.NewPCG(seed, 1))
	h := sha256.New()
	buf := make([]byte, 64<<10)
	for sent := 0; sent < total; {
		n := min(1+rng.IntN(len(buf)), total-sent)
		for i := range buf[:n] {
			buf[i] = byte(rng.Uint32())
		}
		h.Write(buf[:n])
		if _, err := w.Write(buf[:n]); err != nil {
			return [32]byte{}, err
		}
		sent += n
	}
	if err := w.CloseWrite(); err != nil {
		return [32]byte{}, err
	}
	return [32]byte(h.Sum(nil)), nil
}

// drain reads r to io.EOF in random-sized reads and returns the bytes'
// count and SHA-256.
func drain(r *Conn, seed uint64) (int, [32]byte, error) {
	rng := rand.New(rand.NewPCG(seed, 2))
	h := sha256.New()
	buf := make([]byte, 40000)
	total := 0
	for {
		n, err := r.Read(buf[:1+rng.IntN(len(buf))])
		h.Write(buf[:n])
		total += n
		if err == io.EOF {
			return total, [32]byte(h.Sum(nil)), nil
		}
		if err != nil {
			return total, [32]byte{}, err
		}
	}
}

type result struct {
	n   int
	sum [32]byte
	err error
}

// TestByteStream: 8 MiB each way at once, written in random sizes up to
// 64 KiB and read in random sizes up to 40000 bytes (so reads end inside
// packets and span none), arrive whole and in order: the SHA-256 of what
// each end read is that of what the other wrote, and each direction ends
// with io.EOF. Once with full 16 KiB packets, once with Linux's 4088.
func TestByteStream(t *testing.T) {
	leakcheck.Check(t)
	const total = 8 << 20
	for _, maxData := range []int{0, LinuxMaxData} {
		t.Run(map[int]string{0: "16384", LinuxMaxData: "4088"}[maxData], func(t *testing.T) {
			r := newRig(t, rigConfig{mode: channel.PipeByte, server: Config{MaxData: maxData}, client: Config{MaxData: maxData}})
			sent := make(chan result, 2)
			got := make(chan result, 2)
			go func() { s, err := stream(r.client, total, 1); sent <- result{total, s, err} }()
			go func() { s, err := stream(r.server, total, 2); sent <- result{total, s, err} }()
			go func() { n, s, err := drain(r.server, 3); got <- result{n, s, err} }()
			go func() { n, s, err := drain(r.client, 4); got <- result{n, s, err} }()
			want := map[[32]byte]bool{}
			for range 2 {
				res := <-sent
				must(t, res.err)
				want[res.sum] = true
			}
			for range 2 {
				res := <-got
				must(t, res.err)
				if res.n != total || !want[res.sum] {
					t.Fatalf("read %d bytes, SHA-256 %x; want %d bytes of one of the streams written", res.n, res.sum, total)
				}
				delete(want, res.sum)
			}
		})
	}
}

// TestPartialReads: in byte mode a packet read in pieces gives its bytes
// in order, and the rest of a packet stays for the next Read.
func TestPartialReads(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, rigConfig{mode: channel.PipeByte})
	if r.client.MessageMode() || r.server.MessageMode() {
		t.Fatal("a byte-mode pipe in message mode")
	}
	_, err := r.server.Write([]byte("0123456789"))
	must(t, err)
	var got []byte
	for _, size := range []int{3, 3, 4} {
		b := make([]byte, size)
		n, err := r.client.Read(b)
		must(t, err)
		if n != size {
			t.Fatalf("Read of %d bytes got %d", size, n)
		}
		got = append(got, b[:n]...)
	}
	if string(got) != "0123456789" {
		t.Fatalf("partial reads gave %q", got)
	}
}

// TestMessageBoundaries: in message mode each Write is one message and
// each Read one whole message; a buffer too small fails with
// ErrShortBuffer and the message waits for a larger one; a message
// larger than the maximum data, or empty, is refused.
func TestMessageBoundaries(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, rigConfig{mode: channel.PipeMessage, client: Config{MaxData: 100}})
	if !r.client.MessageMode() || !r.server.MessageMode() {
		t.Fatal("the client did not learn message mode from the offer")
	}
	msgs := []string{"a", "bb", "ccc", string(bytes.Repeat([]byte("d"), 100))}
	for _, m := range msgs {
		_, err := r.client.Write([]byte(m))
		must(t, err)
	}
	if n, err := r.client.Write(make([]byte, 101)); n != 0 || !errors.Is(err, ErrMessageSize) {
		t.Fatalf("Write of 101 bytes with MaxData 100: %d, %v", n, err)
	}
	if _, err := r.client.Write(nil); !errors.Is(err, ErrMessageSize) {
		t.Fatalf("Write of an empty message: %v", err)
	}
	big := make([]byte, 200)
	for _, m := range msgs {
		if len(m) > 1 {
			if n, err := r.server.Read(big[:len(m)-1]); n != 0 || !errors.Is(err, ErrShortBuffer) {
				t.Fatalf("Read of %q into %d bytes: %d, %v", m, len(m)-1, n, err)
			}
		}
		n, err := r.server.Read(big)
		must(t, err)
		if string(big[:n]) != m {
			t.Fatalf("Read %q, want %q", big[:n], m)
		}
	}
}

// TestHalfClose: each direction ends on its own. The client's
// CloseWrite ends what the server reads (io.EOF after the data) while the
// server still writes to the client; then the server's ends the other
// direction. A Write after CloseWrite fails; a second CloseWrite does
// nothing.
func TestHalfClose(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, rigConfig{mode: channel.PipeByte})
	_, err := r.client.Write([]byte("up"))
	must(t, err)
	must(t, r.client.CloseWrite())
	must(t, r.client.CloseWrite())
	if _, err := r.client.Write([]byte("x")); !errors.Is(err, ErrWriteClosed) {
		t.Fatalf("Write after CloseWrite: %v", err)
	}
	got, err := io.ReadAll(r.server)
	must(t, err)
	if string(got) != "up" {
		t.Fatalf("server read %q", got)
	}
	if n, err := r.server.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read after the end: %d, %v", n, err)
	}
	// The other direction still flows.
	_, err = r.server.Write([]byte("down"))
	must(t, err)
	b := make([]byte, 10)
	n, err := r.client.Read(b)
	must(t, err)
	if string(b[:n]) != "down" {
		t.Fatalf("client read %q", b[:n])
	}
	must(t, r.server.CloseWrite())
	if n, err := r.client.Read(b); n != 0 || err != io.EOF {
		t.Fatalf("client Read after the server's end: %d, %v", n, err)
	}
}

// TestBackPressure: a writer against a reader that does not read blocks
// in Write (its deadline passes, nothing else fails), the reader holds
// no more than its packet count, and once the reader reads the writer
// resumes and every byte arrives.
func TestBackPressure(t *testing.T) {
	leakcheck.Check(t)
	const total = 2 << 20
	const maxPackets = 4
	r := newRig(t, rigConfig{mode: channel.PipeByte, server: Config{MaxPackets: maxPackets}, ringPages: 8})
	data := make([]byte, total)
	for i := range data {
		data[i] = byte(i * 7)
	}
	must(t, r.client.SetWriteDeadline(time.Now().Add(100*time.Millisecond)))
	n, err := r.client.Write(data)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n >= total {
		t.Fatalf("Write against a reader that does not read: %d bytes, %v; want a timeout before %d", n, err, total)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("the deadline's error %v is not a net.Error with Timeout", err)
	}
	r.server.rmu.Lock()
	heldN := len(r.server.q) - r.server.qHead
	r.server.rmu.Unlock()
	if heldN > maxPackets {
		t.Fatalf("the reader holds %d packets, more than its %d", heldN, maxPackets)
	}
	must(t, r.client.SetWriteDeadline(time.Time{}))
	done := make(chan error, 1)
	go func() {
		_, err := r.client.Write(data[n:])
		if err == nil {
			err = r.client.CloseWrite()
		}
		done <- err
	}()
	got, err := io.ReadAll(r.server)
	must(t, err)
	must(t, <-done)
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not the %d written", len(got), total)
	}
}

// TestDeadlines: a Read past its deadline fails at once with a timeout;
// a Read waiting when its deadline passes fails; a deadline moved later
// while a Read waits lets the data come; Close unblocks a waiting Read
// and Write with net.ErrClosed.
func TestDeadlines(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, rigConfig{mode: channel.PipeByte, server: Config{MaxPackets: 1}, ringPages: 8})
	b := make([]byte, 8)
	must(t, r.client.SetReadDeadline(time.Now().Add(-time.Second)))
	if _, err := r.client.Read(b); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline: %v", err)
	}
	must(t, r.client.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
	if _, err := r.client.Read(b); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read waiting at its deadline: %v", err)
	}
	// Moved later while waiting: the data, not the timeout.
	must(t, r.client.SetReadDeadline(time.Now().Add(time.Hour)))
	got := make(chan error, 1)
	go func() { _, err := r.client.Read(b); got <- err }()
	must(t, r.client.SetDeadline(time.Now().Add(2*testbus.Timeout)))
	_, err := r.server.Write([]byte("x"))
	must(t, err)
	must(t, <-got)

	// Close unblocks a Read and a Write (the server does not read).
	go func() { _, err := r.client.Read(b); got <- err }()
	wrote := make(chan error, 1)
	go func() {
		_, err := r.client.Write(make([]byte, 1<<20))
		wrote <- err
	}()
	testbus.Eventually(t, "a writer waiting for ring space", func() bool {
		r.server.rmu.Lock()
		defer r.server.rmu.Unlock()
		return len(r.server.q)-r.server.qHead == 1
	})
	must(t, r.client.Close())
	if err := <-got; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read across Close: %v", err)
	}
	if err := <-wrote; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write across Close: %v", err)
	}
}

// TestChannelClosed: when the peer's channel goes away without an end of
// stream, Read returns what came, then ErrChannelClosed, and Write fails
// with it.
func TestChannelClosed(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, rigConfig{mode: channel.PipeByte})
	_, err := r.server.Write([]byte("last"))
	must(t, err)
	testbus.Eventually(t, "the data held", func() bool {
		r.client.rmu.Lock()
		defer r.client.rmu.Unlock()
		return len(r.client.q) > r.client.qHead
	})
	must(t, r.sch.Disable()) // rescinds the offer
	b := make([]byte, 8)
	n, err := r.client.Read(b)
	if err != nil || string(b[:n]) != "last" {
		t.Fatalf("Read after the rescind: %q, %v", b[:n], err)
	}
	if _, err := r.client.Read(b); !errors.Is(err, ErrChannelClosed) {
		t.Fatalf("Read at the end: %v", err)
	}
	if _, err := r.client.Write(b); !errors.Is(err, ErrChannelClosed) {
		t.Fatalf("Write after the rescind: %v", err)
	}
}

// TestPauseKeepsHeldData: a server channel paused while its Conn holds
// unread packets is not held up by them (Suspend completes them), and
// after Start the Conn reads every byte, in order.
func TestPauseKeepsHeldData(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, rigConfig{mode: channel.PipeByte})
	for _, s := range []string{"abc", "def"} {
		_, err := r.client.Write([]byte(s))
		must(t, err)
	}
	testbus.Eventually(t, "both packets held", func() bool {
		r.server.rmu.Lock()
		defer r.server.rmu.Unlock()
		return len(r.server.q)-r.server.qHead == 2
	})
	b := make([]byte, 2)
	n, err := r.server.Read(b) // part of the first packet read
	must(t, err)
	paused := make(chan error, 1)
	go func() { paused <- r.sch.Pause() }()
	select {
	case err := <-paused:
		must(t, err)
	case <-time.After(testbus.Timeout):
		t.Fatal("Pause waits for the packets the Conn holds")
	}
	must(t, r.sch.Start())
	_, err = r.client.Write([]byte("gh"))
	must(t, err)
	must(t, r.client.CloseWrite())
	rest, err := io.ReadAll(r.server)
	must(t, err)
	if got := string(b[:n]) + string(rest); got != "abcdefgh" {
		t.Fatalf("read %q across the pause", got)
	}
}

// TestPauseHoldsNoMore: after a pause that copied the packets a Conn
// held (its Suspend), the channel gives it no more packets than it may
// hold beside those copies (at least one, so the stream goes on) until
// the Read has taken them: the Conn never holds much more than
// MaxBuffered. Every byte arrives, in order.
func TestPauseHoldsNoMore(t *testing.T) {
	leakcheck.Check(t)
	const max = 4
	r := newRig(t, rigConfig{mode: channel.PipeByte, server: Config{MaxPackets: max}, ringPages: 16})
	var sent []byte
	write := func(n int) {
		for range n {
			p := bytes.Repeat([]byte{byte('a' + len(sent)/100)}, 100)
			sent = append(sent, p...)
			if _, err := r.client.Write(p); err != nil {
				t.Error(err)
				return
			}
		}
	}
	held := func() int {
		r.server.rmu.Lock()
		defer r.server.rmu.Unlock()
		return len(r.server.q) - r.server.qHead
	}
	write(max)
	testbus.Eventually(t, "the packets held", func() bool { return held() == max })
	must(t, r.sch.Pause()) // copies them
	must(t, r.sch.Start())
	write(2 * max)
	// The channel may give the Conn one packet beside its copies.
	testbus.Eventually(t, "one more packet held", func() bool { return held() > max })
	time.Sleep(50 * time.Millisecond)
	if n := held(); n != max+1 {
		t.Fatalf("the Conn holds %d packets after the pause, want %d: its %d copies and one", n, max+1, max)
	}
	must(t, r.client.CloseWrite())
	got, err := io.ReadAll(r.server)
	must(t, err)
	if !bytes.Equal(got, sent) {
		t.Fatalf("read %d bytes across the pause, want the %d sent, in order", len(got), len(sent))
	}
}
