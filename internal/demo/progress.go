package demo

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/govmbus/govmbus/internal/guestload"
	"github.com/govmbus/govmbus/internal/units"
)

// plainEvery is how often plain progress prints a line.
const plainEvery = time.Second

// TextProgress is a Progress that shows the guest's progress lines: a
// bar on a terminal; else, when plain, a line every plainEvery; else
// nothing.
type TextProgress struct {
	w          io.Writer
	bar        *progressbar.ProgressBar
	plain      bool
	duration   time.Duration
	servicings int

	mu        sync.Mutex
	done      int // servicings completed
	lastPlain time.Time
	last      guestload.Line
}

// NewTextProgress returns a TextProgress writing to w, for a run of
// duration with servicings servicings.
func NewTextProgress(w io.Writer, plain bool, duration time.Duration, servicings int) *TextProgress {
	p := &TextProgress{w: w, plain: plain, duration: duration, servicings: servicings}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(duration.Milliseconds(),
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetDescription("starting"))
	}
	return p
}

// Update shows a progress line of the guest.
func (p *TextProgress) Update(m guestload.Line) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = m
	desc := fmt.Sprintf("%s packets, %s disk verified, serviced %d/%d, %d lost/dup/corrupt",
		units.Count(float64(m.Packets)), units.Bytes(float64(m.DiskBytes)), p.done, p.servicings,
		m.Lost+m.Duplicated+m.Corrupted+uint64(m.Mismatches))
	switch {
	case p.bar != nil:
		p.bar.Describe(desc)
		p.bar.Set64(min(int64(m.Seconds*1000), p.duration.Milliseconds()))
	case p.plain:
		now := time.Now()
		if now.Sub(p.lastPlain) >= plainEvery {
			p.lastPlain = now
			fmt.Fprintf(p.w, "demo: %4.1f/%g s  %s\n", m.Seconds, p.duration.Seconds(), desc)
		}
	}
}

// Serviced shows a servicing done.
func (p *TextProgress) Serviced(n int, ms float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = n
	if p.bar == nil && p.plain {
		fmt.Fprintf(p.w, "demo: servicing %d complete, blackout %.1f ms\n", n, ms)
	}
}

// Finish ends the bar.
func (p *TextProgress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Finish()
	}
}
