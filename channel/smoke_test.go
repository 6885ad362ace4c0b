package channel

import (
	"bytes"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"testing"
)

func TestEchoSync(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var srec, crec recorder
	s, c := r.pair(t, echo, ignore, srec.callbacks(), crec.callbacks())
	resp := make([]byte, 64)
	n, err := c.SendSynchronousRequest([]byte("hello, host!...."), nil, 0, resp, NoTimeout)
	must(t, err)
	if !bytes.Equal(resp[:n], []byte("hello, host!....")) {
		t.Fatalf("resp %q", resp[:n])
	}
	must(t, c.Disable())
	must(t, s.Disable())
	if got := crec.String(); got != "Opened,Started,PostStarted,Suspend,Closed" {
		t.Fatalf("client callbacks %s", got)
	}
	if got := srec.String(); got != "Opened,Started,PostStarted,Suspend,Closed" {
		t.Fatalf("server callbacks %s", got)
	}
}
