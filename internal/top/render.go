package top

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/govmbus/govmbus/hosting/admin"
)

// barWidth is the cells of a ring's occupancy bar.
const barWidth = 10

// line is the layout of the column line and of each row.
const line = "%-6s %-10s %3s %-9s %8s %9s %10s %10s  %-17s  %-17s %4s %6s %21s  %s\n"

// Render writes the table: a title line (the host, the time, the order,
// and with keys the keys that change it), the column line, and one line
// per row. A row without rates shows "-" for them.
func Render(w io.Writer, host admin.HostInfo, at time.Time, rows []Row, k Key, reverse, keys bool) error {
	var b strings.Builder
	order := string(k)
	if reverse {
		order += " reversed"
	}
	blackout := "-"
	if host.LastBlackout > 0 {
		blackout = time.Duration(host.LastBlackout).String()
	}
	fmt.Fprintf(&b, "vmbus top  pid %d  servicings %d  last blackout %s  %s  sort %s", host.Pid, host.Servicings, blackout, at.Format("15:04:05"), order)
	if keys {
		fmt.Fprintf(&b, "  [%s]", Keys)
	}
	b.WriteByte('\n')
	fmt.Fprintf(&b, line, "GUEST", "DEVICE", "ID", "STATE", "PKT/s IN", "PKT/s OUT", "B/s IN", "B/s OUT",
		"IN RING", "OUT RING", "PEND", "QUEUED", "SIGNALS SENT/SUPP", "STALL")
	if len(rows) == 0 {
		b.WriteString("(no guest connected)\n")
	}
	for _, r := range rows {
		pin, pout, bin, bout := "-", "-", "-", "-"
		if r.Rated {
			pin, pout, bin, bout = count(r.PacketsIn), count(r.PacketsOut), byteRate(r.BytesIn), byteRate(r.BytesOut)
		}
		stall := r.Stall
		if stall == "" {
			stall = "-"
		}
		if r.Unstuck > 0 {
			stall += fmt.Sprintf(" (unstuck %d)", r.Unstuck)
		}
		fmt.Fprintf(&b, line, strconv.FormatUint(r.Guest, 10), clip(r.Device, 10), strconv.FormatUint(uint64(r.ID), 10),
			clip(r.State, 9), pin, pout, bin, bout, Bar(r.InUsed, r.InSize), Bar(r.OutUsed, r.OutSize),
			strconv.Itoa(r.Pending), strconv.FormatUint(r.Queued, 10),
			strconv.FormatUint(r.SignalsSent, 10)+"/"+strconv.FormatUint(r.SignalsSuppressed, 10), stall)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Bar draws used of size as barWidth cells and a percentage, such as
// "[###       ]  30%"; a ring of no size (not open) is blank.
func Bar(used, size int) string {
	if size <= 0 {
		return ""
	}
	used = min(max(used, 0), size)
	n := (used*barWidth + size - 1) / size // any use shows
	return fmt.Sprintf("[%s%s] %3d%%", strings.Repeat("#", n), strings.Repeat(" ", barWidth-n), used*100/size)
}

// count formats a rate of packets.
func count(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// byteRate formats a rate of bytes in binary units.
func byteRate(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f%s", v, units[i])
	}
	return fmt.Sprintf("%.1f%s", v, units[i])
}

// clip cuts s to n runes' worth of bytes (device names are ASCII).
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
