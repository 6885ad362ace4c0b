package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/ring"
)

// rawPacket is what next copies out of a packet of the incoming ring
// before committing it.
type rawPacket struct {
	typ     ring.PacketType
	flags   uint16
	txid    uint64
	set     uint16
	ranges  []ring.TransferRange
	payload []byte
}

// next reads the next packet of the incoming ring and commits it, waiting
// for the host's signals while the ring is empty. It looks at the ring
// before each wait, so a signal spent earlier on a packet it read loses
// nothing.
func (g *rawGuest) next(t *testing.T) rawPacket {
	t.Helper()
	var p ring.Packet
	for {
		err := g.r.Next(&p)
		if err == nil {
			break
		}
		if !errors.Is(err, ring.ErrEmpty) {
			t.Fatal(err)
		}
		g.r.Commit()
		g.hostSignal(t)
	}
	rp := rawPacket{typ: p.Type, flags: p.Flags, txid: p.TransactionID, set: p.TransferPageSet,
		ranges: append([]ring.TransferRange(nil), p.TransferRanges...), payload: p.AppendPayload(nil)}
	g.r.Commit()
	return rp
}

// send writes one in-band packet and signals the host.
func (g *rawGuest) send(t *testing.T, txid uint64, flags uint16, payload []byte) {
	t.Helper()
	if err := g.w.WriteInBand(txid, flags, payload); err != nil {
		t.Fatal(err)
	}
	g.w.Commit()
	if err := g.ch.ToHost.Signal(); err != nil {
		t.Fatal(err)
	}
}

// rxBuffer shares pages pages of g's memory as a GPADL and announces it
// to the echo VSP as its receive buffer, set echo.RxSetID, as echo's
// Client.UseRxBuffer does (the message as echo's package doc lays it
// out), and checks the VSP accepted it. It returns the buffer's first
// page.
func (g *rawGuest) rxBuffer(t *testing.T, pages int) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pfn, err := g.cl.Pages().Alloc(pages)
	if err != nil {
		t.Fatal(err)
	}
	pfns := make([]uint64, pages)
	for i := range pfns {
		pfns[i] = pfn + uint64(i)
	}
	id, err := g.cl.CreateGpadl(ctx, g.ch.Offer.ChannelID, []gpa.Range{{ByteCount: uint32(pages * 4096), PFNs: pfns}})
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 24)
	copy(msg, "rxbuffer")
	binary.LittleEndian.PutUint32(msg[8:], id)
	binary.LittleEndian.PutUint16(msg[16:], echo.RxSetID)
	const txid = 0xA11
	g.send(t, txid, ring.FlagCompletionRequested, msg)
	p := g.next(t)
	if p.typ != ring.TypeCompletion || p.txid != txid || len(p.payload) < 4 || binary.LittleEndian.Uint32(p.payload) != 1 {
		t.Fatalf("the announce's answer: type %d, txid %#x, payload %x; want an acceptance (1) completing %#x", p.typ, p.txid, p.payload, txid)
	}
	return pfn
}

// stallLogs counts the host's "channel stalled" lines for g's channel,
// by reason.
func stallLogs(t *testing.T, h *servicedHost, g *rawGuest) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, s := range strings.Split(h.logs(), "\n") {
		var l logLine
		if json.Unmarshal([]byte(s), &l) != nil {
			continue
		}
		if l["msg"] == "channel stalled" && l["guest"] == float64(g.id) && l["channel"] == float64(g.ch.Offer.ChannelID) {
			n[l["reason"].(string)]++
		}
	}
	return n
}

// TestE2EStallOwedTransactions: a guest that announces a receive buffer
// to echo, sends a stream packet, reads the transfer-page answer and
// never completes it owes the host a transaction. After the stall bound
// the admin API, the metrics and the log (once) show owed-transactions;
// --unstick signals nothing for it; the completion, at last, ends it.
func TestE2EStallOwedTransactions(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{{"plain", nil}, {"unstick", []string{"--unstick"}}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, adm, addr := stallHost(t, tc.args...)
			g := openRawGuest(t, h.socket, 8)
			const pages = 4
			pfn := g.rxBuffer(t, pages)

			sent := bytes.Clone(echo.NewPacker(64).Packet(0))
			g.send(t, 0x57, 0, sent) // a stream packet: no completion asked
			p := g.next(t)
			if p.typ != ring.TypeTransferPages || p.flags&ring.FlagCompletionRequested == 0 || p.set != echo.RxSetID || len(p.ranges) != 1 {
				t.Fatalf("the answer: type %d, flags %#x, set %#x, ranges %v; want a transfer-page packet of set %#x asking for a completion",
					p.typ, p.flags, p.set, p.ranges, echo.RxSetID)
			}
			r := p.ranges[0]
			if r.Count != uint32(len(sent)) || uint64(r.Offset)+uint64(r.Count) > pages*4096 {
				t.Fatalf("the answer's range %+v: want %d bytes inside the %d-byte buffer", r, len(sent), pages*4096)
			}
			got, err := g.cl.Memory().View(pfn*4096+uint64(r.Offset), int(r.Count))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, sent) {
				t.Fatalf("the buffer's range holds %x, want the packet sent %x", got, sent)
			}

			c := waitStall(t, adm, g, channel.StallOwedTransactions)
			if c.Stats.Unstuck != 0 {
				t.Fatalf("owed-transactions signalled again %d times: only a lost signal is", c.Stats.Unstuck)
			}
			if v := stalledMetric(t, addr, g, channel.StallOwedTransactions); v != 1 {
				t.Fatalf("govmbus_channel_stalled{reason=owed-transactions} %v, want 1", v)
			}
			waitStallLog(t, h, "channel stalled", channel.StallOwedTransactions)

			// The guest completes the answer at last (DEVICES.md §4 step
			// 5): the stall ends.
			if err := g.w.WriteCompletion(p.txid); err != nil {
				t.Fatal(err)
			}
			g.w.Commit()
			if err := g.ch.ToHost.Signal(); err != nil {
				t.Fatal(err)
			}
			c = waitStall(t, adm, g, "")
			waitStallLog(t, h, "channel stall ended", channel.StallOwedTransactions)
			if v := stalledMetric(t, addr, g, channel.StallOwedTransactions); v != 0 {
				t.Fatalf("govmbus_channel_stalled{reason=owed-transactions} %v after the completion, want 0", v)
			}
			// Over the whole episode: one start logged, nothing signalled.
			if n := stallLogs(t, h, g); len(n) != 1 || n[channel.StallOwedTransactions] != 1 {
				t.Fatalf("channel stalled lines by reason %v, want one owed-transactions:\n%s", n, h.logs())
			}
			if c.Stats.Unstuck != 0 || strings.Contains(h.logs(), "channel signalled again") {
				t.Fatalf("unstuck %d: the owed transaction was signalled again:\n%s", c.Stats.Unstuck, h.logs())
			}
		})
	}
}
