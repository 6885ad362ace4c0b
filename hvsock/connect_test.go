package hvsock

import (
	"errors"
	"testing"
)

// TestParseConnect: the forms --hvsock-connect takes (a path may hold
// '='; the service is after the last), and what is refused.
func TestParseConnect(t *testing.T) {
	r, err := ParseConnect("unix:/run/a=b.sock=6000")
	if err != nil || r.Service != ServiceForPort(6000) || r.Network != "unix" || r.Address != "/run/a=b.sock" {
		t.Errorf("port: %+v, %v", r, err)
	}
	r, err = ParseConnect("unix:x=00001770-facb-11e6-bd58-64006a7986d3")
	if err != nil || r.Service != ServiceForPort(6000) || r.Address != "x" {
		t.Errorf("GUID: %+v, %v", r, err)
	}
	for _, bad := range []string{"", "unix:", "unix:x", "unix:=6000", "tcp:127.0.0.1:1=6000", "6000=unix:x", "unix:x=", "unix:x=y"} {
		if _, err := ParseConnect(bad); !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: %v, want ErrSyntax", bad, err)
		}
	}
}

// FuzzParseConnect: any input parses or fails with ErrSyntax, and what
// parses reads back the same from its string form (the relay's Key).
func FuzzParseConnect(f *testing.F) {
	for _, s := range []string{"unix:/run/x.sock=6000", "unix:a=b=00001770-facb-11e6-bd58-64006a7986d3", "unix:=", "=unix:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseConnect(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("%q: %v, not ErrSyntax", s, err)
			}
			return
		}
		again, err := ParseConnect(connectString(r))
		if err != nil || again != r {
			t.Fatalf("%q: %+v reads back as %+v, %v", s, r, again, err)
		}
	})
}
