package ic

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/savedstate"
)

// Heartbeat defaults: Hyper-V's (Msvm_HeartbeatComponentSettingData:
// Interval 2000 ms, ErrorThreshold 2; docs/ICS.md).
const (
	DefaultHeartbeatInterval = 2 * time.Second
	DefaultErrorThreshold    = 2
)

// HeartbeatConfig configures a HeartbeatServer.
type HeartbeatConfig struct {
	Config
	// Interval between requests; zero: DefaultHeartbeatInterval. An
	// answer must come within it (it is also the reply timeout), else
	// the beat counts as missed.
	Interval time.Duration
	// ErrorThreshold is the consecutive misses after which the guest
	// counts as lost; zero: DefaultErrorThreshold.
	ErrorThreshold int
}

// Health is what the heartbeats say of the guest.
type Health struct {
	// State: "no-contact" before the first answer, "ok", "lost" after
	// ErrorThreshold misses in a row, "incompatible" without a common
	// version.
	State      string    `json:"state"`
	Sequence   uint64    `json:"sequence"` // the next sequence number sent
	Answers    uint64    `json:"answers"`
	Misses     uint64    `json:"misses"`
	InARow     uint64    `json:"misses_in_a_row"`
	LastAnswer time.Time `json:"last_answer,omitzero"`
	AppState   uint32    `json:"app_state"` // OpenVMM's word; Linux echoes 0
}

// HeartbeatServer is the heartbeat VSP for one guest: it sends a request
// every interval with the next sequence number, and the guest must answer
// with that number plus one (Linux's rule); anything else is unexpected.
type HeartbeatServer struct {
	*core
	hcfg   HeartbeatConfig
	paused atomic.Bool
	stop   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
	// Under core.mu:
	next   uint64
	health Health
}

// NewHeartbeatServer offers a heartbeat channel to guest g and starts it.
func NewHeartbeatServer(g *host.Guest, cfg HeartbeatConfig) (*HeartbeatServer, error) {
	return newHeartbeatServer(g, cfg, nil, false, true)
}

// RestoreHeartbeatServer continues a heartbeat server a predecessor saved
// with Save, on a guest restored by host.Restore: its sequence goes on
// where it was, and the negotiation is not repeated.
func RestoreHeartbeatServer(g *host.Guest, cfg HeartbeatConfig, chunks [][]byte) (*HeartbeatServer, error) {
	return newHeartbeatServer(g, cfg, chunks, true, true)
}

// RestorePausedHeartbeatServer is RestoreHeartbeatServer without Start
// (Start, or StartHeld and Release, follow).
func RestorePausedHeartbeatServer(g *host.Guest, cfg HeartbeatConfig, chunks [][]byte) (*HeartbeatServer, error) {
	return newHeartbeatServer(g, cfg, chunks, true, false)
}

func newHeartbeatServer(g *host.Guest, cfg HeartbeatConfig, chunks [][]byte, restore, start bool) (*HeartbeatServer, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultHeartbeatInterval
	}
	if cfg.ErrorThreshold <= 0 {
		cfg.ErrorThreshold = DefaultErrorThreshold
	}
	cfg.ReplyTimeout = cfg.Interval
	s := &HeartbeatServer{core: newCore(ServiceHeartbeat, cfg.Config), hcfg: cfg, stop: make(chan struct{})}
	s.core.check = s.checkAnswer
	s.core.extra = s.saveExtra
	s.core.restoreExtra = s.restoreExtra
	s.paused.Store(!start)
	if err := s.core.start(g, chunks, restore, start); err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go s.loop()
	return s, nil
}

// checkAnswer is the sequence rule. Under core.mu.
func (s *HeartbeatServer) checkAnswer(p *pending, m *Message) error {
	h, err := UnmarshalHeartbeat(m.Body)
	if err != nil {
		return err
	}
	if h.Sequence != p.seq+1 {
		return fmt.Errorf("heartbeat answer %d to request %d, want %d", h.Sequence, p.seq, p.seq+1)
	}
	s.health.AppState = h.AppState
	return nil
}

// loop beats every interval until Close; not while paused.
func (s *HeartbeatServer) loop() {
	defer s.wg.Done()
	t := time.NewTicker(s.hcfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if s.paused.Load() {
			continue
		}
		st := s.Status()
		if !st.Negotiated || st.Pending {
			if st.Negotiated {
				s.miss() // the last one is still unanswered
			}
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.hcfg.Interval)
		go func() {
			select {
			case <-s.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		s.Beat(ctx) //nolint:errcheck // Health records the outcome
		cancel()
	}
}

func (s *HeartbeatServer) miss() {
	s.mu.Lock()
	s.health.Misses++
	s.health.InARow++
	s.mu.Unlock()
}

// Beat sends one heartbeat now and waits for its answer (or ctx): the
// admin's "heartbeat GUEST". A missing answer counts as a miss.
func (s *HeartbeatServer) Beat(ctx context.Context) (Health, error) {
	s.mu.Lock()
	seq := s.next
	s.next++
	s.mu.Unlock()
	body := (&Heartbeat{Sequence: seq}).Marshal()
	_, err := s.request(ctx, MsgHeartbeat, seq, body)
	s.mu.Lock()
	if err == nil {
		s.health.Answers++
		s.health.InARow = 0
		s.health.LastAnswer = time.Now()
	} else {
		s.health.Misses++
		s.health.InARow++
	}
	s.mu.Unlock()
	return s.Health(), err
}

// Health reports the guest's heartbeat health.
func (s *HeartbeatServer) Health() Health {
	st := s.Status()
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.health
	h.Sequence = s.next
	switch {
	case st.Incompatible:
		h.State = "incompatible"
	case h.InARow >= uint64(s.hcfg.ErrorThreshold):
		h.State = "lost"
	case h.Answers == 0:
		h.State = "no-contact"
	default:
		h.State = "ok"
	}
	return h
}

// StopIndications, Pause, Start and Release also hold and resume the
// beats: a servicing's blackout is not the guest's miss.
func (s *HeartbeatServer) StopIndications() { s.paused.Store(true); s.core.StopIndications() }

// Pause: see StopIndications.
func (s *HeartbeatServer) Pause() error { s.paused.Store(true); return s.core.Pause() }

// Start: see StopIndications.
func (s *HeartbeatServer) Start() error {
	err := s.core.Start()
	s.paused.Store(false)
	return err
}

// Release: see StopIndications.
func (s *HeartbeatServer) Release() { s.core.Release(); s.paused.Store(false) }

// Close stops the beats, rescinds the channel and waits for both.
func (s *HeartbeatServer) Close() error {
	s.once.Do(func() { close(s.stop) })
	err := s.core.Close()
	s.wg.Wait()
	return err
}

// heartbeatExtraSize is the heartbeat's own saved bytes.
const heartbeatExtraSize = 8 * 5

func (s *HeartbeatServer) saveExtra() []byte {
	var e savedstate.Encoder
	e.U64(s.next).U64(s.health.Answers).U64(s.health.Misses).U64(s.health.InARow)
	var last uint64
	if !s.health.LastAnswer.IsZero() {
		last = uint64(s.health.LastAnswer.UnixNano())
	}
	return e.U64(last).Body()
}

func (s *HeartbeatServer) restoreExtra(b []byte) error {
	if len(b) != heartbeatExtraSize {
		return fmt.Errorf("ic: heartbeat state of %d bytes, want %d", len(b), heartbeatExtraSize)
	}
	le := binary.LittleEndian
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = le.Uint64(b)
	s.health.Answers, s.health.Misses, s.health.InARow = le.Uint64(b[8:]), le.Uint64(b[16:]), le.Uint64(b[24:])
	if last := le.Uint64(b[32:]); last != 0 && last <= 1<<63-1 {
		s.health.LastAnswer = time.Unix(0, int64(last))
	}
	return nil
}
