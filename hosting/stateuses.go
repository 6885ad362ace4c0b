package hosting

import (
	"fmt"
	"slices"

	"github.com/govmbus/govmbus/savedstate"
)

// StateUses checks a saved state of any scope and returns its Begin and
// the record kinds it uses, increasing: its own records' and, for a host
// state, those of every bus and channel state its chunk records carry
// (put together from their chunks, in order). A reader must know every
// one of them, since this build writes every kind critical; so this is
// what a successor must read to take the state (the pre-flight), and what
// `vmbus state inspect` shows. A nested state that does not check is an
// error.
func StateUses(data []byte) (savedstate.Begin, []savedstate.Kind, error) {
	begin, recs, err := savedstate.Parse(data, savedstate.Limits{MaxBytes: maxHostState})
	if err != nil {
		return savedstate.Begin{}, nil, err
	}
	used := make(map[savedstate.Kind]bool)
	type part struct {
		kind       savedstate.Kind
		guest, dev uint32
	}
	var order []part
	nested := make(map[part][]byte)
	total := 0
	for i, r := range recs {
		used[r.Kind] = true
		if begin.Scope == scopeHost && r.Kind == kindHostHVSockConn {
			// Its channel's state, whole inside it.
			c, err := decodeConnRecord(r.Body)
			if err != nil {
				return savedstate.Begin{}, nil, fmt.Errorf("record %d: %w", i+1, err)
			}
			_, inner, err := savedstate.Parse(c.State.Channel, savedstate.Limits{MaxBytes: maxHostState})
			if err != nil {
				return savedstate.Begin{}, nil, fmt.Errorf("record %d: the connection's channel state: %w", i+1, err)
			}
			for _, r := range inner {
				used[r.Kind] = true
			}
			continue
		}
		if begin.Scope != scopeHost || (r.Kind != kindHostBusChunk && r.Kind != kindHostChannelChunk) {
			continue
		}
		g, dev, b, err := splitChunk(r.Kind, r.Body)
		if err != nil {
			return savedstate.Begin{}, nil, fmt.Errorf("record %d: %w", i+1, err)
		}
		if total += len(b); total > maxHostState {
			return savedstate.Begin{}, nil, fmt.Errorf("record %d: nested states exceed %d bytes", i+1, maxHostState)
		}
		p := part{r.Kind, g, dev}
		if _, ok := nested[p]; !ok {
			order = append(order, p)
		}
		nested[p] = append(nested[p], b...)
	}
	for _, p := range order {
		_, inner, err := savedstate.Parse(nested[p], savedstate.Limits{MaxBytes: maxHostState})
		if err != nil {
			return savedstate.Begin{}, nil, fmt.Errorf("%s of guest %d: %w", savedstate.KindName(p.kind), p.guest, err)
		}
		for _, r := range inner {
			used[r.Kind] = true
		}
	}
	kinds := make([]savedstate.Kind, 0, len(used))
	for k := range used {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	return begin, kinds, nil
}
