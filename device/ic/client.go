package ic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/guest"
)

// discard is the logger of a side configured without one.
var discard = slog.New(slog.DiscardHandler)

// guestRingPages is each IC ring as Linux sizes it: 16 KiB per direction,
// control page included (DEVICES.md §3.1).
const guestRingPages = 4

// Event is one thing a Client did, for a log line.
type Event struct {
	Time    time.Time `json:"time"`
	Service string    `json:"service"`
	// Kind: negotiated, incompatible, heartbeat, shutdown, time, kvp,
	// dropped (a malformed or unexpected host message).
	Kind   string `json:"event"`
	Detail string `json:"detail,omitempty"`
	Status string `json:"status,omitempty"`
	// Offset is the host's clock minus this machine's, after a time
	// message.
	Offset time.Duration `json:"offset_ns,omitempty"`
}

// ClientConfig configures a Client.
type ClientConfig struct {
	Logger *slog.Logger // nil discards
	// OnEvent sees every event, on the channel's worker; it must not
	// block for long. nil: none.
	OnEvent func(Event)
	// OnShutdown carries out a shutdown request; its error is the
	// guest's HV_E_FAIL answer. nil: log only, and answer success.
	OnShutdown func(ctx context.Context, req *Shutdown) error
	// KVPDir holds the KVP pools as files (one per pool), which survive
	// a restart of the client; empty: pools in memory.
	KVPDir string
	// Messages, if set, gives the message versions the guest accepts
	// for a service, preferred first, instead of Linux's (nil: Linux's):
	// tests of a guest without a common version. It runs on the
	// channel's worker at each negotiation.
	Messages func(Service) []Version
}

// Client is the guest's end of the integration components: it opens the
// channels of the services asked for as the host offers them and answers
// every request as Linux 6.1 does.
type Client struct {
	cfg    ClientConfig
	log    *slog.Logger
	chans  []*channel.Channel
	kvp    *kvpStore
	offset atomic.Int64 // host minus guest clock, ns
	mu     sync.Mutex
	msgVer [numServices]Version
	counts [numServices]uint64
}

// OpenClient opens a channel for each of svcs on cl; each opens when the
// host offers it, in the background. Close closes them.
func OpenClient(cl *guest.Client, svcs []Service, cfg ClientConfig) (*Client, error) {
	if cfg.Logger == nil {
		cfg.Logger = discard
	}
	c := &Client{cfg: cfg, log: cfg.Logger}
	var err error
	if c.kvp, err = openKVPStore(cfg.KVPDir); err != nil {
		return nil, err
	}
	for _, s := range svcs {
		if s >= numServices {
			c.Close()
			return nil, fmt.Errorf("ic: service %d", s)
		}
		ch := channel.NewClient()
		svc := s
		err := errors.Join(
			ch.SetClient(cl),
			ch.SetInterface(services[s].typ, services[s].instance),
			ch.SetFriendlyName(services[s].name),
			ch.SetRingPages(guestRingPages, guestRingPages),
			ch.SetMaxPacketSize(services[s].maxPacket),
			ch.SetMaxPacketCount(maxPackets),
			// Answers may run a command or write files.
			ch.SetBlockingProcessing(true),
			ch.SetProcessPacketCallbacks(func(ch *channel.Channel, p *channel.Packet, payload []byte, _ channel.PacketFlags) {
				c.process(svc, ch, payload)
				p.Complete(nil)
			}, nil),
			ch.Enable(),
		)
		if err != nil {
			ch.Cleanup() //nolint:errcheck // the first error matters
			c.Close()
			return nil, err
		}
		c.chans = append(c.chans, ch)
	}
	return c, nil
}

// Close closes every channel. It is idempotent.
func (c *Client) Close() error {
	var errs []error
	for _, ch := range c.chans {
		errs = append(errs, ch.Cleanup())
	}
	return errors.Join(errs...)
}

// Offset is the host's clock minus this machine's as the last time
// message said (never applied to the machine's clock).
func (c *Client) Offset() time.Duration { return time.Duration(c.offset.Load()) }

// Answered is how many requests of service s (negotiation aside) the
// client answered.
func (c *Client) Answered(s Service) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[s]
}

func (c *Client) event(e Event) {
	e.Time = time.Now()
	c.log.Info("ic", "service", e.Service, "event", e.Kind, "detail", e.Detail, "status", e.Status)
	if c.cfg.OnEvent != nil {
		c.cfg.OnEvent(e)
	}
}

// process answers one host message, on the channel's worker. A message
// that does not parse, or is no request, is dropped without an answer
// (Linux drops what it cannot read).
func (c *Client) process(s Service, ch *channel.Channel, payload []byte) {
	info := &services[s]
	m, err := Parse(payload)
	if err == nil && m.Header.Flags&FlagRequest == 0 {
		err = fmt.Errorf("flags %#x: not a request", m.Header.Flags)
	}
	if err != nil {
		c.event(Event{Service: info.name, Kind: "dropped", Detail: err.Error()})
		return
	}
	req := payload[:PipeHeaderSize+int(m.PipeSize)]
	req = append([]byte(nil), req...)
	var out []byte
	switch t := m.Header.Type; {
	case t == MsgNegotiate:
		out = c.negotiate(s, req, m)
	case t != info.msg:
		// Linux answers an unknown type with HV_E_FAIL, but on KVP.
		if s == ServiceKVP {
			c.event(Event{Service: info.name, Kind: "dropped", Detail: "message type " + t.String()})
			return
		}
		out = Reply(req)
		SetStatus(out, StatusFail)
		c.event(Event{Service: info.name, Kind: "dropped", Detail: "message type " + t.String(), Status: StatusName(StatusFail)})
	default:
		out = c.serve(s, req, m)
	}
	if out == nil {
		return
	}
	if err := send(ch, out); err != nil {
		c.log.Warn("ic answer not sent", "service", info.name, "err", err)
		return
	}
	if m.Header.Type == info.msg {
		c.mu.Lock()
		c.counts[s]++
		c.mu.Unlock()
	}
}

func send(ch *channel.Channel, b []byte) error {
	if ch.TrySend(b) == nil {
		return nil
	}
	op, err := ch.AllocatePacket()
	if err != nil {
		return err
	}
	if err := op.Send(b, 0); err != nil {
		op.Free()
		return err
	}
	return nil
}

func (c *Client) negotiate(s Service, req []byte, m *Message) []byte {
	info := &services[s]
	offer, err := UnmarshalNegotiate(m.Body)
	var fw, msg Version
	ok := false
	if err == nil {
		msgs := info.guestMessages
		if c.cfg.Messages != nil {
			if o := c.cfg.Messages(s); o != nil {
				msgs = o
			}
		}
		fw, msg, ok = Choose(offer, guestFrameworks, msgs)
	}
	if !ok {
		// Linux's rule: counts past 100 or past the message are no
		// common version, as is an offer without one.
		c.event(Event{Service: info.name, Kind: "incompatible", Detail: fmt.Sprint(err)})
		return NegotiateReply(req, fw, msg, false)
	}
	c.mu.Lock()
	c.msgVer[s] = msg
	c.mu.Unlock()
	c.event(Event{Service: info.name, Kind: "negotiated", Detail: fw.String() + "/" + msg.String()})
	return NegotiateReply(req, fw, msg, true)
}

func (c *Client) serve(s Service, req []byte, m *Message) []byte {
	switch s {
	case ServiceHeartbeat:
		// The body (by the IC header's size) and the request (by the
		// pipe's) must both hold a sequence: a host may make them differ.
		h, err := UnmarshalHeartbeat(m.Body)
		out, ok := HeartbeatReply(req)
		if err != nil || !ok {
			c.event(Event{Service: "heartbeat", Kind: "dropped", Detail: "heartbeat without a sequence"})
			return nil
		}
		c.event(Event{Service: "heartbeat", Kind: "heartbeat", Detail: fmt.Sprintf("sequence %d", h.Sequence)})
		return out
	case ServiceShutdown:
		return c.shutdown(req, m)
	case ServiceTimeSync:
		return c.time(req, m)
	case ServiceKVP:
		return c.kvpAnswer(req, m)
	}
	return nil
}

func (c *Client) shutdown(req []byte, m *Message) []byte {
	sd, err := UnmarshalShutdown(m.Body)
	if err != nil {
		c.event(Event{Service: "shutdown", Kind: "dropped", Detail: err.Error()})
		return nil
	}
	status := StatusOK
	if sd.Flags > ShutdownHibernate|ShutdownForce {
		status = StatusFail
	} else if c.cfg.OnShutdown != nil {
		ctx, cancel := context.WithTimeout(context.Background(), max(time.Duration(sd.Timeout)*time.Second, time.Minute))
		if err := c.cfg.OnShutdown(ctx, sd); err != nil {
			status = StatusFail
			c.log.Warn("ic shutdown command failed", "err", err)
		}
		cancel()
	}
	c.event(Event{Service: "shutdown", Kind: "shutdown", Detail: fmt.Sprintf("%s reason %#x timeout %ds message %q", sd.Action(), sd.Reason, sd.Timeout, sd.Message), Status: StatusName(status)})
	out := Reply(req)
	SetStatus(out, status)
	return out
}

func (c *Client) time(req []byte, m *Message) []byte {
	c.mu.Lock()
	v4 := c.msgVer[ServiceTimeSync].Major >= 4
	c.mu.Unlock()
	t, err := UnmarshalTimeSync(m.Body, v4)
	if err != nil {
		c.event(Event{Service: "timesync", Kind: "dropped", Detail: err.Error()})
		return nil
	}
	host := FromWindowsTime(t.ParentTime)
	if v4 {
		if now := ReferenceTime(); now >= t.ChildTime && now-t.ChildTime < uint64(time.Hour/100) {
			host = host.Add(time.Duration(now-t.ChildTime) * 100)
		}
	}
	off := time.Until(host)
	c.offset.Store(int64(off))
	kind := map[uint8]string{TimeFlagProbe: "probe", TimeFlagSync: "sync", TimeFlagSample: "sample"}[t.Flags]
	if kind == "" {
		kind = fmt.Sprintf("flags-%#x", t.Flags)
	}
	c.event(Event{Service: "timesync", Kind: "time", Detail: kind + " host " + host.Format(time.RFC3339Nano), Offset: off})
	return Reply(req)
}
