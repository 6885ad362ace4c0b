package hvsock

import (
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
	"github.com/govmbus/govmbus/savedstate"
)

// TestRelayPauseResume: while 4 MiB go each way through a relayed
// connection (the guest and the local server each writing and reading
// at once), the relay is paused, its connection saved and resumed, again
// and again; every byte arrives once, in order, at both ends, and each
// saved state decodes (a connection too full to carry is resumed, as a
// servicing does). A pause that lost what a flow had read, or a
// resume that wrote it twice, changes a SHA-256.
func TestRelayPauseResume(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, Config{}, host.Limits{}, guest.Config{})
	path := t.TempDir() + "/local.sock"
	ll, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ll.Close()
	rl, err := r.srv.Relay(Route{Service: svc5000, Network: "unix", Address: path})
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	gc, err := DialContext(testbus.Context(t), r.Client, svc5000)
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	lc, err := ll.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	const size = 4 << 20
	deadline := time.Now().Add(2 * testbus.Timeout)
	lc.SetDeadline(deadline)
	gc.SetDeadline(deadline)
	up, down := make([]byte, size), make([]byte, size)
	rand.Read(up)
	rand.Read(down)
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	send := func(w io.Writer, closeWrite func() error, b []byte) chan error {
		ch := make(chan error, 1)
		go func() {
			_, err := w.Write(b)
			if err == nil {
				err = closeWrite()
			}
			ch <- err
		}()
		return ch
	}
	recv := func(rd io.Reader) chan result {
		ch := make(chan result, 1)
		go func() {
			h := sha256.New()
			n, err := io.Copy(h, rd)
			var res result
			copy(res.sum[:], h.Sum(nil))
			res.n, res.err = n, err
			ch <- res
		}()
		return ch
	}
	sentUp := send(gc, gc.CloseWrite, up)
	sentDown := send(lc, lc.(*net.UnixConn).CloseWrite, down)
	gotUp, gotDown := recv(lc), recv(gc)
	pauses, refused := 0, 0
	for ; pauses < 20; pauses++ {
		carried := rl.Pause()
		if len(carried) == 0 {
			break // both directions ended
		}
		for _, c := range carried {
			if err := c.Check(); err != nil {
				// What a servicing does then: gives up and resumes.
				refused++
				c.Resume()
				continue
			}
			st, f, err := c.Save()
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			var e savedstate.Encoder
			st.Encode(&e)
			if _, err := DecodeConnState(e.Body()); err != nil {
				t.Fatalf("pause %d: a saved state that does not decode: %v", pauses, err)
			}
			c.Resume()
		}
	}
	for _, ch := range []chan error{sentUp, sentDown} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	for _, x := range []struct {
		ch   chan result
		want []byte
		what string
	}{{gotUp, up, "local end"}, {gotDown, down, "guest end"}} {
		res := <-x.ch
		if res.err != nil || res.n != size || res.sum != sha256.Sum256(x.want) {
			t.Errorf("the %s read %d bytes (%v), SHA-256 equal: %v", x.what, res.n, res.err, res.sum == sha256.Sum256(x.want))
		}
	}
	t.Logf("%d pauses, %d of them too full to save", pauses, refused)
}
