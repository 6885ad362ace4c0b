package top

import (
	"strings"
	"testing"
	"time"

	"github.com/govmbus/govmbus/hosting/admin"
)

// snap is a snapshot at t0+sec of one guest whose channels have the
// given stats.
func snap(sec int, chans ...admin.Channel) *Snapshot {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &Snapshot{At: t0.Add(time.Duration(sec) * time.Second), Guests: []admin.Guest{{ID: 7, Channels: chans}}}
}

func echoCh(id uint32, pin, bin, pout, bout uint64) admin.Channel {
	return admin.Channel{Device: "echo", State: "Active", ID: id, Stats: &admin.ChannelStats{
		PacketsIn: pin, BytesIn: bin, PacketsOut: pout, BytesOut: bout,
		InRingUsed: 1024, InRingSize: 4096, OutRingSize: 4096,
	}}
}

// TestRowsRates: rates are the counters' growth over the snapshots' time
// apart, per channel id; a channel new since the last snapshot, one whose
// counters went back (a servicing's successor) and the first snapshot
// have none.
func TestRowsRates(t *testing.T) {
	prev := snap(0, echoCh(1, 100, 6400, 100, 6400), echoCh(2, 50, 0, 50, 0))
	cur := snap(2, echoCh(1, 300, 19200, 500, 32000), echoCh(2, 10, 0, 10, 0), echoCh(3, 5, 5, 5, 5))
	rows := Rows(prev, cur)
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rows))
	}
	r := rows[0]
	if !r.Rated || r.PacketsIn != 100 || r.PacketsOut != 200 || r.BytesIn != 6400 || r.BytesOut != 12800 {
		t.Fatalf("channel 1: %+v; want 100 and 200 packets/s, 6400 and 12800 B/s", r)
	}
	if rows[1].Rated || rows[2].Rated {
		t.Fatalf("counters that went back, or a new channel, rated: %+v %+v", rows[1], rows[2])
	}
	for _, r := range Rows(nil, cur) {
		if r.Rated {
			t.Fatalf("rated without a previous snapshot: %+v", r)
		}
	}
}

// TestSort: each key's order, reversal, and ties broken by guest and id.
func TestSort(t *testing.T) {
	rows := []Row{
		{Guest: 2, ID: 1, Device: "echo", BytesIn: 10, BytesOut: 300, Pending: 1},
		{Guest: 1, ID: 2, Device: "blk", BytesIn: 30, BytesOut: 100, Stall: "peer-not-reading"},
		{Guest: 1, ID: 1, Device: "kvp", BytesIn: 20, BytesOut: 200, Pending: 5},
	}
	order := func() string {
		var b strings.Builder
		for _, r := range rows {
			b.WriteString(r.Device + " ")
		}
		return strings.TrimSpace(b.String())
	}
	for _, c := range []struct {
		k    Key
		rev  bool
		want string
	}{
		{ByGuest, false, "kvp blk echo"},
		{ByGuest, true, "echo blk kvp"},
		{ByDevice, false, "blk echo kvp"},
		{ByIn, false, "blk kvp echo"},
		{ByOut, false, "echo kvp blk"},
		{ByPending, false, "kvp echo blk"},
		{ByStall, false, "blk kvp echo"},
	} {
		Sort(rows, c.k, c.rev)
		if got := order(); got != c.want {
			t.Errorf("sort %c reverse %v: %s, want %s", c.k, c.rev, got, c.want)
		}
	}
	if Key('x').Valid() || !ByStall.Valid() {
		t.Error("Valid: x is no key, s is")
	}
}

// TestBar: the occupancy bar's cells and percentage.
func TestBar(t *testing.T) {
	for _, c := range []struct {
		used, size int
		want       string
	}{
		{0, 4096, "[          ]   0%"},
		{1, 4096, "[#         ]   0%"},
		{2048, 4096, "[#####     ]  50%"},
		{4096, 4096, "[##########] 100%"},
		{9999, 4096, "[##########] 100%"},
		{0, 0, ""},
	} {
		if got := Bar(c.used, c.size); got != c.want {
			t.Errorf("Bar(%d, %d) = %q, want %q", c.used, c.size, got, c.want)
		}
	}
}

// TestRender: the title, the column line and a row with its rates, bars,
// counters and stall.
func TestRender(t *testing.T) {
	rows := []Row{{Guest: 7, Device: "echo", ID: 3, State: "Active", Rated: true, PacketsIn: 1500, BytesIn: 3 << 20,
		InUsed: 1024, InSize: 4096, OutSize: 4096, Pending: 2, Queued: 9, SignalsSent: 11, SignalsSuppressed: 4,
		Stall: "lost-signal", Unstuck: 1}}
	var b strings.Builder
	at := time.Date(2026, 1, 1, 12, 34, 56, 0, time.UTC)
	if err := Render(&b, admin.HostInfo{Pid: 42, Servicings: 3, LastBlackout: admin.Duration(1500 * time.Microsecond)}, at, rows, ByIn, true, true); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want title, columns and one row:\n%s", len(lines), b.String())
	}
	for _, want := range []string{"pid 42", "servicings 3", "last blackout 1.5ms", "12:34:56", "sort i reversed", "q quit"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("title %q lacks %q", lines[0], want)
		}
	}
	f := strings.Fields(lines[2])
	want := []string{"7", "echo", "3", "Active", "1500", "0", "3.0MiB", "0B", "[###", "]", "25%", "[", "]", "0%", "2", "9", "11/4", "lost-signal", "(unstuck", "1)"}
	if strings.Join(f, " ") != strings.Join(want, " ") {
		t.Fatalf("row fields\n%q\nwant\n%q", f, want)
	}
	if i, j := strings.Index(lines[1], "STALL"), strings.Index(lines[2], "lost-signal"); i != j {
		t.Errorf("STALL column at %d, the row's stall at %d", i, j)
	}
	// Without a terminal no key works: the title does not offer them.
	b.Reset()
	if err := Render(&b, admin.HostInfo{Pid: 42}, at, rows, ByIn, false, false); err != nil {
		t.Fatal(err)
	}
	if title, _, _ := strings.Cut(b.String(), "\n"); strings.Contains(title, "quit") || !strings.HasSuffix(title, "sort i") {
		t.Errorf("plain title %q: want it to end at the order, without keys", title)
	}
}

// TestFit: the terminal view's lines cut at the width, and those past the
// height counted on the last line, so the title stays on screen.
func TestFit(t *testing.T) {
	text := []byte("title line\ncolumns\nrow 1\nrow 2\nrow 3\n")
	got := Fit(text, 6, 4)
	want := []string{"title ", "column", "row 1", "... 2 "}
	if len(got) != len(want) {
		t.Fatalf("%d lines %q, want %d", len(got), got, len(want))
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("line %d %q, want %q", i, got[i], want[i])
		}
	}
	if all := Fit(text, 0, 0); len(all) != 5 || string(all[4]) != "row 3" {
		t.Fatalf("no limit: %q", all)
	}
}
