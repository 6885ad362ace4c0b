package ic

import (
	"context"
	"fmt"
	"time"

	"github.com/govmbus/govmbus/host"
)

// ShutdownServer is the shutdown VSP for one guest: it asks the guest to
// shut down, reboot or hibernate and returns the guest's answer.
type ShutdownServer struct {
	*core
	last *ShutdownResult // under core.mu
}

// ShutdownRequest is what the host asks.
type ShutdownRequest struct {
	Reboot    bool
	Hibernate bool
	Force     bool
	Reason    uint32        // zero: ReasonPlanned
	Timeout   time.Duration // told to the guest, in whole seconds
	Message   string        // at most 1023 UTF-16 units
}

// ShutdownResult is the guest's answer.
type ShutdownResult struct {
	Action string `json:"action"`
	Status uint32 `json:"status"`
	OK     bool   `json:"ok"`
}

// NewShutdownServer offers a shutdown channel to guest g and starts it.
func NewShutdownServer(g *host.Guest, cfg Config) (*ShutdownServer, error) {
	return newShutdownServer(g, cfg, nil, false, true)
}

// RestoreShutdownServer continues a shutdown server a predecessor saved:
// a request it had on the wire is answered to this one (Last), once.
func RestoreShutdownServer(g *host.Guest, cfg Config, chunks [][]byte) (*ShutdownServer, error) {
	return newShutdownServer(g, cfg, chunks, true, true)
}

// RestorePausedShutdownServer is RestoreShutdownServer without Start.
func RestorePausedShutdownServer(g *host.Guest, cfg Config, chunks [][]byte) (*ShutdownServer, error) {
	return newShutdownServer(g, cfg, chunks, true, false)
}

func newShutdownServer(g *host.Guest, cfg Config, chunks [][]byte, restore, start bool) (*ShutdownServer, error) {
	s := &ShutdownServer{core: newCore(ServiceShutdown, cfg)}
	s.core.check = s.record
	if err := s.core.start(g, chunks, restore, start); err != nil {
		return nil, err
	}
	return s, nil
}

// record keeps the guest's answer, whoever waits for it. Under core.mu.
func (s *ShutdownServer) record(p *pending, m *Message) error {
	req, err := UnmarshalShutdown(p.payload[offBody:])
	if err != nil {
		return err
	}
	s.last = &ShutdownResult{Action: req.Action(), Status: m.Header.Status, OK: m.Header.Status == StatusOK}
	return nil
}

// Request asks the guest and waits for its answer, ctx, or the reply
// timeout. The guest answers before it acts (Linux does); an error
// status comes back as a result with OK false.
func (s *ShutdownServer) Request(ctx context.Context, r ShutdownRequest) (ShutdownResult, error) {
	body := Shutdown{Reason: r.Reason, Timeout: uint32(min(r.Timeout/time.Second, 1<<31)), Message: r.Message}
	if body.Reason == 0 {
		body.Reason = ReasonPlanned
	}
	switch {
	case r.Reboot && r.Hibernate:
		return ShutdownResult{}, fmt.Errorf("ic: reboot and hibernate at once")
	case r.Reboot:
		body.Flags = ShutdownRestart
	case r.Hibernate:
		body.Flags = ShutdownHibernate
	}
	if r.Force {
		body.Flags |= ShutdownForce
	}
	b, err := body.Marshal()
	if err != nil {
		return ShutdownResult{}, err
	}
	m, err := s.request(ctx, MsgShutdown, 0, b)
	if err != nil {
		return ShutdownResult{}, err
	}
	return ShutdownResult{Action: body.Action(), Status: m.Header.Status, OK: m.Header.Status == StatusOK}, nil
}

// Last is the guest's last answer, nil before any: also one that came to
// a restored server for a request its predecessor sent.
func (s *ShutdownServer) Last() *ShutdownResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		return nil
	}
	r := *s.last
	return &r
}
