// Package units holds the short human forms of counts and byte sizes that
// the command line's summaries print.
package units

import "fmt"

// Count is n with a k, M or G suffix.
func Count(n float64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f G", n/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2f M", n/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f k", n/1e3)
	}
	return fmt.Sprintf("%.0f", n)
}

// Bytes is n bytes in B, kB, MB or GB.
func Bytes(n float64) string {
	if n < 1e3 {
		return fmt.Sprintf("%.0f B", n)
	}
	return Count(n) + "B"
}
