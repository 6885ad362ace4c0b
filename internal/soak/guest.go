package soak

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/govmbus/govmbus/internal/child"
	"github.com/govmbus/govmbus/internal/guestload"
)

// guest is one guest process and what it printed.
type guest struct {
	n     int
	proc  *child.Process
	first chan struct{} // closed at its first progress line (or its result)
	read  chan struct{} // closed when its stdout ended

	mu     sync.Mutex
	last   guestload.Line  // its last progress line
	result *guestload.Line // its result line
}

// follow reads the guest's stdout lines until they end, keeping a copy in
// w if not nil.
func (g *guest) follow(w io.Writer) {
	defer close(g.read)
	var once sync.Once
	for l := range g.proc.Lines() {
		if w != nil {
			fmt.Fprintln(w, l)
		}
		var m guestload.Line
		if json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		g.mu.Lock()
		switch m.Type {
		case guestload.TypeProgress:
			g.last = m
			once.Do(func() { close(g.first) })
		case guestload.TypeResult:
			g.result = &m
			g.last = m
			// A load shorter than the progress interval ends
			// before its first progress line: it ran all the same.
			once.Do(func() { close(g.first) })
		}
		g.mu.Unlock()
	}
}
