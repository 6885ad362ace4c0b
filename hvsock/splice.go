package hvsock

import (
	"io"
	"sync"
)

// HalfConn is a connection whose two directions end apart: a *Conn, a
// *net.TCPConn or *net.UnixConn, or a reader and a writer joined (Join).
type HalfConn interface {
	io.ReadWriteCloser
	// CloseWrite ends the writing direction; reading goes on.
	CloseWrite() error
}

// spliceBuffer is the bytes each direction of a Splice reads at once:
// half of what a connection receives ahead of its reader (MaxBuffered's
// default, sixteen 16 KiB packets), so that one Read takes eight held
// packets and one write passes them on. 64 KiB took a tenth more CPU per
// byte through the relay (BenchmarkHVSockRelayStream); 256 KiB took no
// less than this.
const spliceBuffer = 128 << 10

// Splice copies a to b and b to a until both directions have ended, then
// closes both. The end of one direction is passed on: Read's io.EOF from
// one side is a CloseWrite on the other, and the other direction goes on.
// Any other error ends both directions at once (both are closed, which
// resets them) and is returned; nil means both ended by their EOF.
func Splice(a, b HalfConn) error {
	var (
		reset sync.Once
		cause error // the first direction's error, set under reset
		wg    sync.WaitGroup
	)
	run := func(dst, src HalfConn) {
		if err := pass(dst, src); err != nil {
			// Ends the other direction's Read or Write; its error is
			// the reset's, not the cause.
			reset.Do(func() {
				cause = err
				a.Close() //nolint:errcheck // a reset is the intent
				b.Close() //nolint:errcheck // a reset is the intent
			})
		}
	}
	wg.Go(func() { run(a, b) })
	run(b, a)
	wg.Wait()
	// Both directions are over: a close error has nothing left to lose.
	a.Close() //nolint:errcheck // see above
	b.Close() //nolint:errcheck // see above
	return cause
}

// pass copies src to dst until src's EOF, which it passes on as dst's
// CloseWrite.
func pass(dst, src HalfConn) error {
	buf := make([]byte, spliceBuffer)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return dst.CloseWrite()
		}
		if err != nil {
			return err
		}
	}
}

// Join makes a HalfConn of a reader and a writer, as a command's stdin
// and stdout: CloseWrite closes w, Close closes both, each if it is an
// io.Closer.
func Join(r io.Reader, w io.Writer) HalfConn { return &joined{r: r, w: w} }

type joined struct {
	r io.Reader
	w io.Writer
}

func (j *joined) Read(b []byte) (int, error)  { return j.r.Read(b) }
func (j *joined) Write(b []byte) (int, error) { return j.w.Write(b) }

func (j *joined) CloseWrite() error {
	if c, ok := j.w.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

func (j *joined) Close() error {
	j.CloseWrite() //nolint:errcheck // perhaps closed already by CloseWrite
	if c, ok := j.r.(io.Closer); ok {
		c.Close() //nolint:errcheck // reading ends either way
	}
	return nil
}
