package top

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/govmbus/govmbus/hosting/admin"
)

// Snapshot is what the admin API said at one moment.
type Snapshot struct {
	At     time.Time
	Host   admin.HostInfo
	Guests []admin.Guest
}

// Take reads a snapshot from the admin API: the host, then its guests.
func Take(ctx context.Context, c *admin.Client) (*Snapshot, error) {
	s := &Snapshot{}
	if err := c.Do(ctx, http.MethodGet, "/v1/host", nil, &s.Host); err != nil {
		return nil, fmt.Errorf("top: %w", err)
	}
	if err := c.Do(ctx, http.MethodGet, "/v1/guests", nil, &s.Guests); err != nil {
		return nil, fmt.Errorf("top: %w", err)
	}
	s.At = time.Now()
	return s, nil
}
