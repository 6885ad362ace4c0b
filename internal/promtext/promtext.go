// Package promtext writes the Prometheus text exposition format, version
// 0.0.4: "# HELP" and "# TYPE" lines, then one line per sample, with label
// values and help texts escaped as the format asks. It is what
// `vmbus host --metrics` serves, written by hand instead of with the
// official client library, whose packages (and protobuf's, procfs's)
// slowed every start of the host, servicing re-execs included.
//
// A Writer appends to a byte slice: the caller writes each metric family
// once, its samples together, in an order of its choosing (the format
// wants no sorting, only that a family's lines be contiguous). Names are
// the caller's constants: an invalid metric or label name panics.
package promtext

import (
	"math"
	"sort"
	"strconv"
	"sync"
)

// ContentType is the Content-Type of the format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Type is a metric family's type, as its "# TYPE" line says it.
type Type string

// The types this package writes.
const (
	Counter   Type = "counter"
	Gauge     Type = "gauge"
	Histogram Type = "histogram"
)

// Writer appends the text format to Buf. The zero value is ready to use.
// A Writer is not safe for concurrent use.
type Writer struct {
	Buf []byte
}

// Family writes the "# HELP" and "# TYPE" lines that open a metric family.
// The family's samples must follow before the next family.
func (w *Writer) Family(name, help string, typ Type) {
	mustName(name, false)
	w.Buf = append(w.Buf, "# HELP "...)
	w.Buf = append(w.Buf, name...)
	w.Buf = append(w.Buf, ' ')
	w.Buf = appendEscaped(w.Buf, help, false)
	w.Buf = append(w.Buf, "\n# TYPE "...)
	w.Buf = append(w.Buf, name...)
	w.Buf = append(w.Buf, ' ')
	w.Buf = append(w.Buf, typ...)
	w.Buf = append(w.Buf, '\n')
}

// Sample writes one sample line: name, the labels of set, then the extra
// labels given as name, value pairs, then v.
func (w *Writer) Sample(name string, set Labels, v float64, extra ...string) {
	mustName(name, false)
	if len(extra)%2 != 0 {
		panic("promtext: odd number of extra label strings for " + name)
	}
	w.Buf = append(w.Buf, name...)
	if set.s != "" || len(extra) > 0 {
		w.Buf = append(w.Buf, '{')
		w.Buf = append(w.Buf, set.s...)
		for i := 0; i < len(extra); i += 2 {
			if i > 0 || set.s != "" {
				w.Buf = append(w.Buf, ',')
			}
			w.Buf = appendLabel(w.Buf, extra[i], extra[i+1])
		}
		w.Buf = append(w.Buf, '}')
	}
	w.Buf = append(w.Buf, ' ')
	w.Buf = AppendFloat(w.Buf, v)
	w.Buf = append(w.Buf, '\n')
}

// Histogram writes h as a whole family: its help and type lines, a
// cumulative _bucket line per upper bound and one for +Inf, then _sum and
// _count.
func (w *Writer) Histogram(name, help string, h *Hist) {
	w.Family(name, help, Histogram)
	h.mu.Lock()
	counts := append([]uint64(nil), h.counts...)
	sum := h.sum
	h.mu.Unlock()
	bucket := name + "_bucket"
	var cum uint64
	var le []byte
	for i, n := range counts {
		cum += n
		if i < len(h.upper) {
			le = AppendFloat(le[:0], h.upper[i])
		} else {
			le = append(le[:0], "+Inf"...)
		}
		w.Sample(bucket, Labels{}, float64(cum), "le", string(le))
	}
	w.Sample(name+"_sum", Labels{}, sum)
	w.Sample(name+"_count", Labels{}, float64(cum))
}

// Labels is a label set rendered once, to be shared by the samples of
// several families (a channel's guest, id and device, say). The zero
// value is the empty set.
type Labels struct {
	s string // name="escaped value" pairs, comma-separated, without braces
}

// NewLabels renders the label set of name, value pairs.
func NewLabels(pairs ...string) Labels {
	if len(pairs)%2 != 0 {
		panic("promtext: odd number of label strings")
	}
	var b []byte
	for i := 0; i < len(pairs); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendLabel(b, pairs[i], pairs[i+1])
	}
	return Labels{string(b)}
}

func appendLabel(b []byte, name, value string) []byte {
	mustName(name, true)
	b = append(b, name...)
	b = append(b, '=', '"')
	b = appendEscaped(b, value, true)
	return append(b, '"')
}

// appendEscaped appends s with backslash and newline escaped, and the
// double quote too in a label value.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, '\\', '\\')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '"' && quote:
			b = append(b, '\\', '"')
		default:
			b = append(b, c)
		}
	}
	return b
}

// AppendFloat appends v as the format writes values: +Inf, -Inf and NaN
// by name, integers below 2^53 in full ("19500000", not "1.95e+07"), any
// other value in the shortest form that reads back exactly.
func AppendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case v == math.Trunc(v) && math.Abs(v) < 1<<53:
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// mustName panics unless s is a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)
// or, with label, a valid label name (no colons, no leading "__").
func mustName(s string, label bool) {
	ok := s != ""
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
			c == ':' && !label || c >= '0' && c <= '9' && i > 0
	}
	if label && len(s) >= 2 && s[:2] == "__" {
		ok = false
	}
	if !ok {
		panic("promtext: invalid name " + strconv.Quote(s))
	}
}

// Hist is a histogram with fixed upper bounds: what a Prometheus
// histogram counts. It is safe for concurrent use.
type Hist struct {
	upper []float64

	mu     sync.Mutex
	counts []uint64 // per bucket, not cumulative; the last is +Inf's
	sum    float64
}

// NewHist returns a histogram with the given upper bounds, which must
// increase strictly (+Inf is implied and must not be given).
func NewHist(upper []float64) *Hist {
	for i, u := range upper {
		if math.IsNaN(u) || math.IsInf(u, 1) || i > 0 && u <= upper[i-1] {
			panic("promtext: histogram bounds must increase strictly and be finite")
		}
	}
	return &Hist{upper: append([]float64(nil), upper...), counts: make([]uint64, len(upper)+1)}
}

// Observe counts v in the first bucket whose upper bound is at least v.
func (h *Hist) Observe(v float64) {
	i := sort.SearchFloat64s(h.upper, v)
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.mu.Unlock()
}
