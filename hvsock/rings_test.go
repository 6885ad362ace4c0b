package hvsock

import (
	"io"
	"testing"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/pipe"
	"github.com/govmbus/govmbus/protocol"
)

// chanOf is the channel under a connection.
func chanOf(t testing.TB, c *Conn) *channel.Channel {
	t.Helper()
	ps, ok := c.s.(pipeStream)
	if !ok {
		t.Fatalf("stream %T, not the pipe's", c.s)
	}
	return ps.Channel()
}

// The guest asks for 6-page rings from hosts before protocol 5.0, which
// take no other size, and for 64-page rings from 5.0 on; either way it
// writes packets of the pipe's maximum, 16384 data bytes, and the host
// takes them.
func TestGuestRings(t *testing.T) {
	for _, tc := range []struct {
		v     protocol.Version
		pages int
	}{
		{protocol.VersionWin10, 6},
		{protocol.VersionWin10RS30, 6},
		{protocol.VersionWin10RS31, 64},
		{protocol.VersionWin10RS5, 64},
	} {
		t.Run(tc.v.String(), func(t *testing.T) {
			r := newRig(t, Config{}, host.Limits{}, guest.Config{Versions: []protocol.Version{tc.v}})
			gc, hc := pair(t, r)
			defer closeWithin(t, gc)
			defer hc.Close()
			st := chanOf(t, hc).Stats()
			want := (tc.pages - 1) * 4096
			if st.InRingSize != want || st.OutRingSize != want {
				t.Fatalf("host's rings: in %d, out %d data bytes; want %d each (%d pages)", st.InRingSize, st.OutRingSize, want, tc.pages)
			}
			buf := make([]byte, pipe.MaxData)
			if _, err := gc.Write(buf); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(hc, buf); err != nil {
				t.Fatal(err)
			}
			// The sender's counts: they are published as the packet
			// goes into the ring (the receiver's at its batch's end).
			if st := chanOf(t, gc).Stats(); st.PacketsOut != 1 || st.BytesOut != pipe.HeaderSize+pipe.MaxData {
				t.Fatalf("guest wrote %d packets, %d bytes, for one write of %d; want one packet of %d", st.PacketsOut, st.BytesOut, pipe.MaxData, pipe.HeaderSize+pipe.MaxData)
			}
		})
	}
}
