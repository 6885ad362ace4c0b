package ringtext

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/ring"
)

// maxSpanPages bounds the pages a one-PFN range may be extended to, so
// that a spec of a few bytes cannot ask for gigabytes of PFNs.
const maxSpanPages = 1 << 16

// ParseGPARange parses PFN[,PFN...]:OFFSET:LEN, one GPA range of a
// gpa-direct packet: LEN bytes starting OFFSET bytes into the first page.
// With a single PFN, a range spanning several pages uses the pages that
// follow it. Numbers may be decimal or 0x-prefixed hex. The range it
// returns is valid (gpa.Range.Validate).
func ParseGPARange(s string) (gpa.Range, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return gpa.Range{}, errors.New("want PFN[,PFN...]:OFFSET:LEN")
	}
	off, err := parseUint(parts[1], 32)
	if err != nil {
		return gpa.Range{}, fmt.Errorf("offset: %v", err)
	}
	n, err := parseUint(parts[2], 32)
	if err != nil {
		return gpa.Range{}, fmt.Errorf("length: %v", err)
	}
	r := gpa.Range{ByteCount: uint32(n), ByteOffset: uint32(off)}
	for _, ps := range strings.Split(parts[0], ",") {
		pfn, err := parseUint(ps, 64)
		if err != nil {
			return gpa.Range{}, fmt.Errorf("pfn: %v", err)
		}
		r.PFNs = append(r.PFNs, pfn)
	}
	if len(r.PFNs) == 1 && off < gpa.PageSize {
		pages := gpa.PagesSpanned(r.ByteOffset, r.ByteCount)
		if pages > maxSpanPages {
			return gpa.Range{}, fmt.Errorf("range spans %d pages", pages)
		}
		if pages > 1 && r.PFNs[0] > math.MaxUint64-(pages-1) {
			// The pages that follow would wrap past the last page number.
			return gpa.Range{}, fmt.Errorf("pfn %#x: the %d pages the range spans run past the last page number", r.PFNs[0], pages)
		}
		for i := uint64(1); i < pages; i++ {
			r.PFNs = append(r.PFNs, r.PFNs[0]+i)
		}
	}
	if err := r.Validate(); err != nil {
		return gpa.Range{}, err
	}
	return r, nil
}

// ParseTransferRange parses OFFSET:LEN, one range of a transfer-pages
// packet. Numbers may be decimal or 0x-prefixed hex.
func ParseTransferRange(s string) (ring.TransferRange, error) {
	off, n, ok := strings.Cut(s, ":")
	if !ok {
		return ring.TransferRange{}, errors.New("want OFFSET:LEN")
	}
	o, err := parseUint(off, 32)
	if err != nil {
		return ring.TransferRange{}, fmt.Errorf("offset: %v", err)
	}
	c, err := parseUint(n, 32)
	if err != nil {
		return ring.TransferRange{}, fmt.Errorf("length: %v", err)
	}
	return ring.TransferRange{Offset: uint32(o), Count: uint32(c)}, nil
}

// parseUint is strconv.ParseUint with base prefixes, its error naming the
// text and the reason without the function's name.
func parseUint(s string, bits int) (uint64, error) {
	v, err := strconv.ParseUint(s, 0, bits)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) {
			return 0, fmt.Errorf("%q: %v", s, ne.Err)
		}
		return 0, err
	}
	return v, nil
}
