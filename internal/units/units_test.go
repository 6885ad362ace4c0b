package units

import "testing"

func TestForms(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{Count(999), "999"},
		{Count(1500), "1.5 k"},
		{Count(2_340_000), "2.34 M"},
		{Count(3e9), "3.00 G"},
		{Bytes(512), "512 B"},
		{Bytes(4096), "4.1 kB"},
		{Bytes(1.5e9), "1.50 GB"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
