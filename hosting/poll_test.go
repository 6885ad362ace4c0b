package hosting_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/hosting/stdkinds"
)

// TestPoll: Config.Poll reaches every device's server channel and
// guest.Config.ChannelPoll the guest's echo channel, and both poll: a
// ping's round trips show up as polls on each end. A budget out of
// range is bad usage.
func TestPoll(t *testing.T) {
	const hostPoll, guestPoll = time.Millisecond, 900 * time.Microsecond
	cfg := hosting.Config{Socket: filepath.Join(t.TempDir(), "bus.sock"), Kinds: stdkinds.Registry(), Devices: []string{"echo"}, Poll: hostPoll}
	bad := cfg
	bad.Poll = -time.Microsecond
	if _, err := hosting.New(bad); !errors.Is(err, hosting.ErrConfig) {
		t.Fatalf("New with Poll %v: %v, want ErrConfig", bad.Poll, err)
	}
	d, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Serve(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	defer d.Shutdown(ctx) //nolint:errcheck // the test's verdict is in
	cl, err := guest.Dial(ctx, cfg.Socket, guest.Config{MemorySize: 4 << 20, ChannelPoll: guestPoll})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	c, err := echo.Open(ctx, cl, echo.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r, err := c.Ping(ctx, 200, 64, 10*time.Second); err != nil || r.Received != 200 {
		t.Fatalf("ping: %+v, %v", r, err)
	}
	chans := d.Channels()
	if len(chans) != 1 {
		t.Fatalf("%d channels served", len(chans))
	}
	for _, e := range []struct {
		name  string
		poll  time.Duration
		got   time.Duration
		polls uint64
	}{
		{"server", hostPoll, chans[0].Channel.Poll(), chans[0].Channel.Stats().PollHits + chans[0].Channel.Stats().PollMisses},
		{"client", guestPoll, c.Channel().Poll(), c.Channel().Stats().PollHits + c.Channel().Stats().PollMisses},
	} {
		if e.got != e.poll || e.polls == 0 {
			t.Errorf("%s channel: poll budget %v (want %v), %d polls", e.name, e.got, e.poll, e.polls)
		}
	}
}
