package pipe

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/govmbus/govmbus/capture"
	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/internal/leakcheck"
)

// TestCaptureRecordsPipePackets: a server channel's capture records a
// pipe packet, written in two parts (header, data), as the one payload
// the guest sees: the header and the data joined.
func TestCaptureRecordsPipePackets(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, rigConfig{mode: channel.PipeByte})
	path := filepath.Join(t.TempDir(), "bus.pcapng")
	w, err := capture.Create(path, capture.Options{})
	must(t, err)
	r.bus.Host.Capture().Swap(w)
	_, err = r.server.Write([]byte("hello"))
	must(t, err)
	b := make([]byte, 8)
	n, err := r.client.Read(b)
	must(t, err)
	r.bus.Host.Capture().Swap(nil)
	must(t, w.Close())
	if string(b[:n]) != "hello" {
		t.Fatalf("read %q", b[:n])
	}
	want := make([]byte, HeaderSize, HeaderSize+5)
	PutHeader(want, 5)
	want = append(want, "hello"...)
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	rd := capture.NewReader(f)
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("no packet record holds % x", want)
		}
		must(t, err)
		if rec.Kind == capture.KindPacket && rec.Dir == capture.Out && bytes.HasSuffix(rec.Data, want) {
			return
		}
	}
}
