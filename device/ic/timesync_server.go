package ic

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govmbus/govmbus/host"
)

// DefaultSampleInterval is how often a TimeSyncServer sends a sample
// (OpenVMM's 5 s).
const DefaultSampleInterval = 5 * time.Second

// TimeSyncConfig configures a TimeSyncServer.
type TimeSyncConfig struct {
	Config
	// Interval between samples; zero: DefaultSampleInterval; negative:
	// none (only TimeSync.Send).
	Interval time.Duration
}

// TimeSample is one time message the host sent and the guest answered.
type TimeSample struct {
	Flags      uint8         `json:"flags"` // TimeFlagSync or TimeFlagSample
	ParentTime uint64        `json:"parent_time"`
	Reference  uint64        `json:"reference_time,omitempty"` // 4.0 only
	Host       time.Time     `json:"host_time"`
	RoundTrip  time.Duration `json:"round_trip_ns"`
}

// TimeSyncServer is the time sync VSP for one guest: a SYNC once the
// channel negotiated, then a SAMPLE every interval, in Windows time
// (100 ns since 1601) and, with message version 4.0, the reference time.
type TimeSyncServer struct {
	*core
	tcfg   TimeSyncConfig
	paused atomic.Bool
	stop   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

// NewTimeSyncServer offers a time sync channel to guest g and starts it.
func NewTimeSyncServer(g *host.Guest, cfg TimeSyncConfig) (*TimeSyncServer, error) {
	return newTimeSyncServer(g, cfg, nil, false, true)
}

// RestoreTimeSyncServer continues a time sync server a predecessor saved.
func RestoreTimeSyncServer(g *host.Guest, cfg TimeSyncConfig, chunks [][]byte) (*TimeSyncServer, error) {
	return newTimeSyncServer(g, cfg, chunks, true, true)
}

// RestorePausedTimeSyncServer is RestoreTimeSyncServer without Start.
func RestorePausedTimeSyncServer(g *host.Guest, cfg TimeSyncConfig, chunks [][]byte) (*TimeSyncServer, error) {
	return newTimeSyncServer(g, cfg, chunks, true, false)
}

func newTimeSyncServer(g *host.Guest, cfg TimeSyncConfig, chunks [][]byte, restore, start bool) (*TimeSyncServer, error) {
	if cfg.Interval == 0 {
		cfg.Interval = DefaultSampleInterval
	}
	s := &TimeSyncServer{core: newCore(ServiceTimeSync, cfg.Config), tcfg: cfg, stop: make(chan struct{})}
	s.paused.Store(!start)
	if err := s.core.start(g, chunks, restore, start); err != nil {
		return nil, err
	}
	if cfg.Interval > 0 {
		s.wg.Add(1)
		go s.loop(!restore)
	}
	return s, nil
}

// loop sends the first SYNC once negotiated, then samples.
func (s *TimeSyncServer) loop(syncFirst bool) {
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.stop
		cancel()
	}()
	if syncFirst {
		if s.waitReady(ctx) {
			s.Send(ctx, TimeFlagSync) //nolint:errcheck // the next sample tries again
		}
	}
	t := time.NewTicker(s.tcfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.paused.Load() && s.Status().Negotiated {
			s.Send(ctx, TimeFlagSample) //nolint:errcheck // the next sample tries again
		}
	}
}

func (s *TimeSyncServer) waitReady(ctx context.Context) bool {
	s.mu.Lock()
	ready := s.ready
	s.mu.Unlock()
	select {
	case <-ready:
		return true
	case <-ctx.Done():
		return false
	}
}

// Send sends one time message now (flags TimeFlagSync or TimeFlagSample) and
// waits for the guest's answer: the admin's "time GUEST".
func (s *TimeSyncServer) Send(ctx context.Context, flags uint8) (TimeSample, error) {
	if !s.waitReady(ctx) {
		return TimeSample{}, ctx.Err()
	}
	st := s.Status()
	now := time.Now()
	m := TimeSyncMsg{V4: st.Message.Major >= 4, ParentTime: ToWindowsTime(now), Flags: flags}
	if m.V4 {
		m.ChildTime = ReferenceTime()
	}
	_, err := s.request(ctx, MsgTimeSync, 0, m.Marshal())
	if err != nil {
		return TimeSample{}, err
	}
	return TimeSample{Flags: flags, ParentTime: m.ParentTime, Reference: m.ChildTime, Host: now, RoundTrip: time.Since(now)}, nil
}

// StopIndications holds the samples too (see HeartbeatServer).
func (s *TimeSyncServer) StopIndications() { s.paused.Store(true); s.core.StopIndications() }

// Pause holds the samples too.
func (s *TimeSyncServer) Pause() error { s.paused.Store(true); return s.core.Pause() }

// Start resumes the samples too.
func (s *TimeSyncServer) Start() error {
	err := s.core.Start()
	s.paused.Store(false)
	return err
}

// Release resumes the samples too.
func (s *TimeSyncServer) Release() { s.core.Release(); s.paused.Store(false) }

// Close stops the samples, rescinds the channel and waits for both.
func (s *TimeSyncServer) Close() error {
	s.once.Do(func() { close(s.stop) })
	err := s.core.Close()
	s.wg.Wait()
	return err
}
