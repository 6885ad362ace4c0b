package top

import (
	"cmp"
	"slices"

	"github.com/govmbus/govmbus/hosting/admin"
)

// Row is one channel's line of the table.
type Row struct {
	Guest  uint64
	Device string
	ID     uint32
	State  string
	// Rated says the rates are known: the channel was in the previous
	// snapshot, open, with counters that did not go back (a servicing's
	// successor starts them at zero again).
	Rated bool
	// Per second, in is from the guest and out to it.
	PacketsIn, PacketsOut, BytesIn, BytesOut float64
	// SignalsSent and SignalsSuppressed are the totals.
	SignalsSent, SignalsSuppressed   uint64
	InUsed, InSize, OutUsed, OutSize int
	Pending                          int
	Queued                           uint64
	Stall                            string
	Unstuck                          uint64
}

// Rows makes one row per channel of cur, its rates from the counters'
// growth since prev (nil: no rates).
func Rows(prev, cur *Snapshot) []Row {
	type key struct {
		guest uint64
		id    uint32
	}
	before := make(map[key]*admin.ChannelStats)
	var dt float64
	if prev != nil {
		dt = cur.At.Sub(prev.At).Seconds()
		for _, g := range prev.Guests {
			for _, c := range g.Channels {
				if c.Stats != nil && c.ID != 0 {
					before[key{g.ID, c.ID}] = c.Stats
				}
			}
		}
	}
	var rows []Row
	for _, g := range cur.Guests {
		for _, c := range g.Channels {
			r := Row{Guest: g.ID, Device: c.Device, ID: c.ID, State: c.State, Stall: c.Stall}
			if s := c.Stats; s != nil {
				r.SignalsSent, r.SignalsSuppressed = s.SignalsSent, s.SignalsSuppressed
				r.InUsed, r.InSize, r.OutUsed, r.OutSize = s.InRingUsed, s.InRingSize, s.OutRingUsed, s.OutRingSize
				r.Pending, r.Queued, r.Unstuck = s.CompletionsPending, s.Queued, s.Unstuck
				if p := before[key{g.ID, c.ID}]; p != nil && dt > 0 && grew(p, s) {
					r.Rated = true
					r.PacketsIn = float64(s.PacketsIn-p.PacketsIn) / dt
					r.PacketsOut = float64(s.PacketsOut-p.PacketsOut) / dt
					r.BytesIn = float64(s.BytesIn-p.BytesIn) / dt
					r.BytesOut = float64(s.BytesOut-p.BytesOut) / dt
				}
			}
			rows = append(rows, r)
		}
	}
	return rows
}

// grew reports whether no counter of s is below p's.
func grew(p, s *admin.ChannelStats) bool {
	return s.PacketsIn >= p.PacketsIn && s.PacketsOut >= p.PacketsOut && s.BytesIn >= p.BytesIn && s.BytesOut >= p.BytesOut
}

// Key is an order of the rows, named by the key that selects it.
type Key byte

// The orders (the keys of the terminal view). The rates sort the busiest
// first; the others ascending; every order ends in guest and channel id.
const (
	ByGuest   Key = 'g'
	ByDevice  Key = 'd'
	ByIn      Key = 'i' // bytes per second from the guest
	ByOut     Key = 'o' // bytes per second to the guest
	ByPending Key = 'p' // completions pending, most first
	ByStall   Key = 's' // stalled channels first
)

// Keys is the help line's list of the orders.
const Keys = "g guest  d device  i in/s  o out/s  p pending  s stall  r reverse  q quit"

// Valid reports whether k names an order.
func (k Key) Valid() bool {
	switch k {
	case ByGuest, ByDevice, ByIn, ByOut, ByPending, ByStall:
		return true
	}
	return false
}

// Sort orders rows by k, reversed if reverse.
func Sort(rows []Row, k Key, reverse bool) {
	slices.SortStableFunc(rows, func(a, b Row) int {
		c := 0
		switch k {
		case ByDevice:
			c = cmp.Compare(a.Device, b.Device)
		case ByIn:
			c = cmp.Compare(b.BytesIn, a.BytesIn)
		case ByOut:
			c = cmp.Compare(b.BytesOut, a.BytesOut)
		case ByPending:
			c = cmp.Compare(b.Pending, a.Pending)
		case ByStall:
			c = cmp.Compare(stalled(b), stalled(a))
			if c == 0 {
				c = cmp.Compare(a.Stall, b.Stall)
			}
		}
		if c == 0 {
			c = cmp.Or(cmp.Compare(a.Guest, b.Guest), cmp.Compare(a.ID, b.ID))
		}
		if reverse {
			return -c
		}
		return c
	})
}

// stalled is 1 for a stalled row, for sorting.
func stalled(r Row) int {
	if r.Stall != "" {
		return 1
	}
	return 0
}
