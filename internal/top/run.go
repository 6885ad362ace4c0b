package top

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/govmbus/govmbus/hosting/admin"
)

// Options configure Run.
type Options struct {
	Admin    string        // the admin API's socket
	Interval time.Duration // between snapshots (0: a second)
	Count    int           // stop after this many tables (0: until q or ctx ends)
	Sort     Key           // the first order (0: ByGuest)
}

// ANSI sequences of the terminal view: cursor home and clear, hide and
// show the cursor.
const (
	ansiClear = "\x1b[H\x1b[2J"
	ansiHide  = "\x1b[?25l"
	ansiShow  = "\x1b[?25h"
)

// Run shows the table until ctx ends, Count tables were shown, or (on a
// terminal) q is pressed. When out is a terminal and in is one too, the
// table is redrawn in place every interval and keys choose the order;
// otherwise one plain table is written per interval, each after the
// blank line that ends the one before, rates from the first interval on.
func Run(ctx context.Context, o Options, in *os.File, out io.Writer) error {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if !o.Sort.Valid() {
		o.Sort = ByGuest
	}
	c := admin.NewClient(o.Admin)
	prev, err := Take(ctx, c)
	if err != nil {
		return err
	}
	if f, ok := out.(*os.File); ok && in != nil && term.IsTerminal(int(f.Fd())) && term.IsTerminal(int(in.Fd())) {
		return live(ctx, o, c, prev, in, f)
	}
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for n := 0; o.Count == 0 || n < o.Count; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cur, err := Take(ctx, c)
		if err != nil {
			return err
		}
		rows := Rows(prev, cur)
		Sort(rows, o.Sort, false)
		if n > 0 {
			if _, err := io.WriteString(out, "\n"); err != nil {
				return err
			}
		}
		if err := Render(out, cur.Host, cur.At, rows, o.Sort, false, false); err != nil {
			return err
		}
		prev = cur
	}
	return nil
}

// live is the terminal view: raw mode for single keys, the table redrawn
// in place. It waits for keys with poll on in, so no goroutine is left
// blocked in a read when it returns.
func live(ctx context.Context, o Options, c *admin.Client, prev *Snapshot, in, out *os.File) error {
	st, err := term.MakeRaw(int(in.Fd()))
	if err != nil {
		return fmt.Errorf("top: %w", err)
	}
	defer term.Restore(int(in.Fd()), st) //nolint:errcheck // the terminal is left as it can be
	fmt.Fprint(out, ansiHide)
	defer fmt.Fprint(out, ansiShow)
	key, reverse := o.Sort, false
	var (
		cur     = prev
		rows    = Rows(nil, cur)
		lastErr error
	)
	draw := func() error {
		var b bytes.Buffer
		b.WriteString(ansiClear)
		Sort(rows, key, reverse)
		if err := Render(&b, cur.Host, cur.At, rows, key, reverse, true); err != nil {
			return err
		}
		if lastErr != nil {
			fmt.Fprintf(&b, "%v\n", lastErr)
		}
		w, h, err := term.GetSize(int(out.Fd()))
		if err != nil {
			w, h = 0, 0
		}
		// Raw mode: a newline does not return the carriage.
		_, err = out.Write(bytes.Join(Fit(b.Bytes(), w, h), []byte("\r\n")))
		return err
	}
	if err := draw(); err != nil {
		return err
	}
	next := time.Now().Add(o.Interval)
	for n := 0; o.Count == 0 || n < o.Count; {
		if ctx.Err() != nil {
			return nil
		}
		wait := time.Until(next)
		if wait <= 0 {
			s, err := Take(ctx, c)
			lastErr = err
			if err == nil {
				prev, cur = cur, s
				rows = Rows(prev, cur)
			}
			next = next.Add(o.Interval)
			if time.Until(next) <= 0 {
				next = time.Now().Add(o.Interval) // fell behind: no burst of catching up
			}
			n++
			if err := draw(); err != nil {
				return err
			}
			continue
		}
		// Poll in slices of at most 100 ms, so that ctx is seen soon.
		fds := []unix.PollFd{{Fd: int32(in.Fd()), Events: unix.POLLIN}}
		k, err := unix.Poll(fds, int(min(wait, 100*time.Millisecond)/time.Millisecond)+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("top: %w", err)
		}
		if k <= 0 {
			continue
		}
		var buf [16]byte
		m, err := in.Read(buf[:])
		if err != nil {
			return nil // the terminal is gone
		}
		redraw := false
		for _, ch := range buf[:m] {
			switch {
			case ch == 'q' || ch == 3: // q, or ^C (raw mode sends no SIGINT)
				return nil
			case ch == 'r':
				reverse, redraw = !reverse, true
			case Key(ch).Valid():
				key, reverse, redraw = Key(ch), false, true
			}
		}
		if redraw {
			if err := draw(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Fit cuts text into lines that fit a terminal of width × height: lines
// cut at the width, and the lines past the height replaced by a last one
// that counts them, so that a redraw never scrolls the title away. A
// width or height of 0 is no limit.
func Fit(text []byte, width, height int) [][]byte {
	lines := bytes.Split(bytes.TrimSuffix(text, []byte("\n")), []byte("\n"))
	if height > 1 && len(lines) > height {
		more := len(lines) - height + 1
		lines = append(lines[:height-1], fmt.Appendf(nil, "... %d more lines (the keys reorder them)", more))
	}
	if width > 0 {
		for i, l := range lines {
			if len(l) > width {
				lines[i] = l[:width]
			}
		}
	}
	return lines
}
