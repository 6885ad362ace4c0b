package capture

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReader: a hostile file gives records or an error, never a panic;
// every record it gives passes the checks ParseRecord makes.
func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, Options{SnapLen: 32})
	w.Control(1, In, []byte{14, 0, 0, 0, 0, 0, 0, 0})
	w.Packet(1, 2, Out, 6, 1, 5, nil, make([]byte, 40), nil)
	w.Signal(1, 2, In)
	w.Event(map[string]int{"servicing": 1})
	w.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		rd := NewReader(bytes.NewReader(b))
		for i := 0; i < 1000; i++ {
			rec, err := rd.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrFormat) && !errors.Is(err, ErrRecord) {
					t.Fatalf("unwrapped error %v", err)
				}
				return
			}
			if uint64(len(rec.Data)) > uint64(rec.OrigLen) {
				t.Fatalf("%d bytes, original %d", len(rec.Data), rec.OrigLen)
			}
			s := Summarize(&rec)
			_ = s.String()
		}
	})
}
