package hosting_test

import (
	"crypto/rand"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/hosting/stdkinds"
	"github.com/govmbus/govmbus/hvsock"
	"github.com/govmbus/govmbus/protocol"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestServiceToCarriesOfferNotOpened: a guest asks for a relayed
// connection (its connect answered with the channel's offer) and opens
// it only after the host was serviced into a new daemon. The successor
// has offered the same channel on, and the connection relays both ways.
// Before, the successor rescinded the offer, and the open failed with a
// reset. With -update, the state the servicing wrote becomes the golden
// host-hvsock-offer-v1.state.
func TestServiceToCarriesOfferNotOpened(t *testing.T) {
	dir := t.TempDir()
	local := filepath.Join(dir, "local.sock")
	localEcho(t, local)
	stateFile := filepath.Join(dir, "host.state")
	cfg := hosting.Config{Socket: filepath.Join(dir, "bus.sock"), Kinds: stdkinds.Registry(), Devices: []string{"echo"},
		Relays: []string{"5000=unix:" + local}, StateFile: stateFile}
	d, cl, ctx := serveGuest(t, cfg, 30*time.Second)
	var endpoint protocol.GUID
	rand.Read(endpoint[:])
	o, err := cl.Connect(ctx, protocol.TLConnectRequest{EndpointID: endpoint, ServiceID: hvsock.ServiceForPort(5000)})
	if err != nil {
		t.Fatal(err)
	}
	next, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.ServiceTo(next); err != nil {
		t.Fatal(err)
	}
	gc, err := hvsock.DialOffer(ctx, cl, o)
	if err != nil {
		t.Fatalf("the open of the offer made before the servicing: %v", err)
	}
	defer gc.Close()
	gc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := gc.Write([]byte("carried")); err != nil {
		t.Fatal(err)
	}
	if err := gc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(gc); err != nil || string(b) != "carried" {
		t.Fatalf("the echo: %q, %v", b, err)
	}
	if *update {
		state, err := os.ReadFile(stateFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "golden", "host-hvsock-offer-v1.state"), state, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := next.Shutdown(ctx); err != nil && !strings.Contains(err.Error(), "closed") {
		t.Fatal(err)
	}
}
