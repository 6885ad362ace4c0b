package hosting

import (
	"encoding/binary"
	"fmt"

	"github.com/govmbus/govmbus/savedstate"
	"github.com/govmbus/govmbus/transport"
)

// scopeHost is the scope of the state a servicing host hands its
// successor (docs/SAVED_STATE.md): the whole daemon, wrapping each guest's
// bus state (scope 2) and each device channel's state (scope 1).
const scopeHost = savedstate.ScopeHost

// Record kinds of a host state (docs/SAVED_STATE.md). The bus and channel
// states travel in chunk records, in order, since one may exceed a record.
const (
	kindHostInfo         savedstate.Kind = 0x0200
	kindHostGuest        savedstate.Kind = 0x0201
	kindHostBusChunk     savedstate.Kind = 0x0202
	kindHostChannelChunk savedstate.Kind = 0x0203
	// kindHostGuestID follows a host-guest record: the guest's
	// host.Guest.ID, which the successor gives it again. Not critical: a
	// release that does not read it numbers the guests anew, as releases
	// before it did.
	kindHostGuestID savedstate.Kind = 0x0206
)

// Bounds on what a successor accepts.
const (
	maxHostState    = 256 << 20
	maxDevices      = 64
	maxDeviceSpec   = 4096
	maxSavedGuests  = 1024
	maxGuestEvents  = 2 * 4096
	maxCarriedConns = 64 * maxSavedGuests // hvsock.DefaultMaxConnsPerGuest each
	hostChunkSize   = 512 << 10           // payload of one chunk record, below savedstate.MaxBody
	noDevice        = ^uint32(0)
	hostInfoSize    = 12
	guestHeaderSize = 9
	guestIDSize     = 12
)

// Flags of a host-guest record (its fifth byte).
const (
	guestFlagMemory    = 1 << 0 // the guest's memory was handed over
	guestFlagNoServers = 1 << 1 // saved before OnGuest: no device servers yet
	guestFlagHello     = 1 << 2 // the guest's transport hello is still in the socket
)

func init() {
	savedstate.RegisterKind(kindHostInfo, savedstate.KindInfo{Name: "host-info", Describe: func(b []byte) (any, error) { return decodeHostInfo(b) }})
	savedstate.RegisterKind(kindHostGuest, savedstate.KindInfo{Name: "host-guest", Describe: func(b []byte) (any, error) { return decodeHostGuest(b) }})
	savedstate.RegisterKind(kindHostBusChunk, savedstate.KindInfo{Name: "host-bus-chunk", Describe: describeChunk(kindHostBusChunk)})
	savedstate.RegisterKind(kindHostChannelChunk, savedstate.KindInfo{Name: "host-channel-chunk", Describe: describeChunk(kindHostChannelChunk)})
	savedstate.RegisterKind(kindHostGuestID, savedstate.KindInfo{Name: "host-guest-id", Describe: func(b []byte) (any, error) {
		index, id, err := decodeGuestID(b)
		return guestIDJSON{index, id}, err
	}})
}

// guestIDJSON is a host-guest-id record as `vmbus state inspect` shows it.
type guestIDJSON struct {
	Guest uint32 `json:"guest"`
	ID    uint64 `json:"id"`
}

// hostState is the whole saved state of a servicing host.
type hostState struct {
	Count   uint32   // servicings so far, this one included
	Devices []string // the --device values, in order
	Guests  []*guestState
	Conns   []connState // the relayed hvsock connections carried, after the guests
	Offers  []connState // hvsock connections offered, not yet opened, after the connections
}

// hostInfo is the first record: the servicing count, the devices and how
// many guest records follow.
type hostInfo struct {
	Count   uint32   `json:"servicings"`
	Devices []string `json:"devices"`
	Guests  uint32   `json:"guests"`
}

// guestState is one guest: which descriptors it handed over, its bus
// state and each device's channel state (nil: not saved; the device's
// channel is offered anew).
type guestState struct {
	Index  uint32 `json:"guest"`
	ID     uint64 `json:"-"` // host.Guest.ID; 0: none saved (kindHostGuestID)
	Memory bool   `json:"memory"`
	// NoServers: the guest had not made contact, its servers were not
	// built; OnGuest builds them once it does, after the restore.
	NoServers bool `json:"no_servers,omitempty"`
	// HelloPending: the guest's transport hello had not been received.
	HelloPending bool         `json:"hello_pending,omitempty"`
	Events       []eventState `json:"events"`
	Bus          []byte       `json:"-"`
	Channels     [][][]byte   `json:"-"`

	sawChannel bool // parsing: a channel chunk came, no bus chunk may follow
}

// eventState names one event descriptor of a guest.
type eventState struct {
	ChannelID uint32              `json:"channel"`
	Dir       transport.Direction `json:"dir"`
}

// chunkJSON is how inspect shows a chunk record.
type chunkJSON struct {
	Guest   uint32     `json:"guest"`
	Device  *uint32    `json:"device,omitempty"`
	Bytes   int        `json:"bytes"`
	Scope   string     `json:"scope,omitempty"`
	Records []nestJSON `json:"records,omitempty"`
	Partial bool       `json:"partial,omitempty"` // not a whole state on its own
}

type nestJSON struct {
	Kind string `json:"kind"`
	Body any    `json:"body"`
}

func (s *hostState) records() ([]savedstate.Record, error) {
	info := make([]byte, 0, hostInfoSize+64)
	info = binary.LittleEndian.AppendUint32(info, s.Count)
	info = binary.LittleEndian.AppendUint32(info, uint32(len(s.Devices)))
	info = binary.LittleEndian.AppendUint32(info, uint32(len(s.Guests)))
	for _, d := range s.Devices {
		info = binary.LittleEndian.AppendUint16(info, uint16(len(d)))
		info = append(info, d...)
	}
	crit := savedstate.FlagCritical
	recs := []savedstate.Record{{Kind: kindHostInfo, Flags: crit, Body: info}}
	for _, g := range s.Guests {
		b := make([]byte, 0, guestHeaderSize+5*len(g.Events))
		b = binary.LittleEndian.AppendUint32(b, g.Index)
		var mem byte
		if g.Memory {
			mem |= guestFlagMemory
		}
		if g.NoServers {
			mem |= guestFlagNoServers
		}
		if g.HelloPending {
			mem |= guestFlagHello
		}
		b = append(b, mem)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(g.Events)))
		for _, e := range g.Events {
			b = binary.LittleEndian.AppendUint32(b, e.ChannelID)
			b = append(b, byte(e.Dir))
		}
		recs = append(recs, savedstate.Record{Kind: kindHostGuest, Flags: crit, Body: b})
		if g.ID != 0 {
			id := binary.LittleEndian.AppendUint32(make([]byte, 0, guestIDSize), g.Index)
			recs = append(recs, savedstate.Record{Kind: kindHostGuestID, Body: binary.LittleEndian.AppendUint64(id, g.ID)})
		}
		for rest := g.Bus; len(rest) > 0; {
			n := min(len(rest), hostChunkSize)
			body := binary.LittleEndian.AppendUint32(make([]byte, 0, 4+n), g.Index)
			recs = append(recs, savedstate.Record{Kind: kindHostBusChunk, Flags: crit, Body: append(body, rest[:n]...)})
			rest = rest[n:]
		}
		for dev, chunks := range g.Channels {
			for _, c := range chunks {
				if len(c) > savedstate.MaxBody-8 {
					return nil, fmt.Errorf("guest %d device %d: a channel chunk of %d bytes", g.Index, dev, len(c))
				}
				body := binary.LittleEndian.AppendUint32(make([]byte, 0, 8+len(c)), g.Index)
				body = binary.LittleEndian.AppendUint32(body, uint32(dev))
				recs = append(recs, savedstate.Record{Kind: kindHostChannelChunk, Flags: crit, Body: append(body, c...)})
			}
		}
	}
	for i := range s.Conns {
		r, err := s.Conns[i].record()
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	for i := range s.Offers {
		r, err := s.Offers[i].recordOf(kindHostHVSockOffer, 0)
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// encode packs s into a saved state whose identity is the socket path.
func (s *hostState) encode(socket string) ([]byte, error) {
	recs, err := s.records()
	if err != nil {
		return nil, err
	}
	sv, err := savedstate.NewSaver(scopeHost, []byte(socket), recs)
	if err != nil {
		return nil, err
	}
	return sv.Bytes(), nil
}

func decodeHostInfo(b []byte) (*hostInfo, error) {
	if len(b) < hostInfoSize {
		return nil, fmt.Errorf("host-info of %d bytes", len(b))
	}
	h := &hostInfo{Count: binary.LittleEndian.Uint32(b), Guests: binary.LittleEndian.Uint32(b[8:])}
	n := binary.LittleEndian.Uint32(b[4:])
	if n > maxDevices || h.Guests > maxSavedGuests {
		return nil, fmt.Errorf("host-info: %d devices, %d guests", n, h.Guests)
	}
	h.Devices = make([]string, 0, n)
	rest := b[hostInfoSize:]
	for range n {
		if len(rest) < 2 {
			return nil, fmt.Errorf("host-info: device list truncated")
		}
		l := int(binary.LittleEndian.Uint16(rest))
		if l > maxDeviceSpec || len(rest)-2 < l {
			return nil, fmt.Errorf("host-info: device of %d bytes", l)
		}
		h.Devices = append(h.Devices, string(rest[2:2+l]))
		rest = rest[2+l:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("host-info: %d trailing bytes", len(rest))
	}
	return h, nil
}

func decodeHostGuest(b []byte) (*guestState, error) {
	if len(b) < guestHeaderSize {
		return nil, fmt.Errorf("host-guest of %d bytes", len(b))
	}
	g := &guestState{Index: binary.LittleEndian.Uint32(b)}
	if b[4]&^(guestFlagMemory|guestFlagNoServers|guestFlagHello) != 0 {
		return nil, fmt.Errorf("host-guest: flags %#x", b[4])
	}
	g.Memory, g.NoServers, g.HelloPending = b[4]&guestFlagMemory != 0, b[4]&guestFlagNoServers != 0, b[4]&guestFlagHello != 0
	n := binary.LittleEndian.Uint32(b[5:])
	if n > maxGuestEvents || uint64(len(b)-guestHeaderSize) != 5*uint64(n) {
		return nil, fmt.Errorf("host-guest: %d events in %d bytes", n, len(b)-guestHeaderSize)
	}
	g.Events = make([]eventState, n)
	for i := range g.Events {
		e := b[guestHeaderSize+5*i:]
		g.Events[i] = eventState{ChannelID: binary.LittleEndian.Uint32(e), Dir: transport.Direction(e[4])}
		if d := g.Events[i].Dir; d != transport.ToHost && d != transport.ToGuest {
			return nil, fmt.Errorf("host-guest: event direction %d", d)
		}
	}
	return g, nil
}

// decodeGuestID reads a host-guest-id record.
func decodeGuestID(b []byte) (index uint32, id uint64, err error) {
	if len(b) != guestIDSize {
		return 0, 0, fmt.Errorf("host-guest-id of %d bytes", len(b))
	}
	index, id = binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint64(b[4:])
	if id == 0 {
		return 0, 0, fmt.Errorf("host-guest-id: guest %d with id 0", index)
	}
	return index, id, nil
}

// splitChunk takes a chunk record's guest (and device) and data.
func splitChunk(k savedstate.Kind, b []byte) (guest, dev uint32, data []byte, err error) {
	hdr := 4
	if k == kindHostChannelChunk {
		hdr = 8
	}
	if len(b) <= hdr {
		return 0, 0, nil, fmt.Errorf("%s of %d bytes", savedstate.KindName(k), len(b))
	}
	guest, dev = binary.LittleEndian.Uint32(b), noDevice
	if hdr == 8 {
		dev = binary.LittleEndian.Uint32(b[4:])
	}
	return guest, dev, b[hdr:], nil
}

// describeChunk shows a chunk and, when it is a whole state on its own
// (the usual case), the records of the state it carries.
func describeChunk(kind savedstate.Kind) func([]byte) (any, error) {
	return func(b []byte) (any, error) { return describeChunkOf(kind, b) }
}

func describeChunkOf(kind savedstate.Kind, b []byte) (any, error) {
	g, dev, data, err := splitChunk(kind, b)
	if err != nil {
		return nil, err
	}
	out := chunkJSON{Guest: g, Bytes: len(data)}
	if dev != noDevice {
		out.Device = &dev
	}
	begin, recs, err := savedstate.Parse(data, savedstate.Limits{})
	if err != nil {
		out.Partial = true
		return out, nil
	}
	out.Scope = begin.Scope.String()
	for i, r := range recs {
		n := nestJSON{Kind: savedstate.KindName(r.Kind), Body: fmt.Sprintf("%x", r.Body)}
		if info, ok := savedstate.LookupKind(r.Kind); ok && info.Describe != nil {
			// A record of a known kind that does not decode is a state no
			// restore takes, nested or not.
			v, err := info.Describe(r.Body)
			if err != nil {
				return nil, fmt.Errorf("its %s state's record %d (%s): %w", out.Scope, i+1, n.Kind, err)
			}
			n.Body = v
		}
		out.Records = append(out.Records, n)
	}
	return out, nil
}

// parseHostState checks a host state completely: container, scope,
// identity, every record and the order between them.
func parseHostState(data []byte, socket string) (*hostState, error) {
	begin, recs, err := savedstate.Parse(data, savedstate.Limits{MaxBytes: maxHostState})
	if err != nil {
		return nil, err
	}
	if begin.Scope != scopeHost {
		return nil, fmt.Errorf("a %v state, not a host state", begin.Scope)
	}
	if string(begin.Identity) != socket {
		return nil, fmt.Errorf("the state is of the host on %q, not %q", begin.Identity, socket)
	}
	if len(recs) == 0 || recs[0].Kind != kindHostInfo {
		return nil, fmt.Errorf("the first record is not host-info")
	}
	info, err := decodeHostInfo(recs[0].Body)
	if err != nil {
		return nil, err
	}
	s := &hostState{Count: info.Count, Devices: info.Devices}
	var cur *guestState
	for i, r := range recs[1:] {
		seq := i + 2
		switch r.Kind {
		case kindHostGuest:
			g, err := decodeHostGuest(r.Body)
			if err != nil {
				return nil, fmt.Errorf("record %d: %w", seq, err)
			}
			if len(s.Conns) > 0 || len(s.Offers) > 0 {
				return nil, fmt.Errorf("record %d: a guest after the hvsock connections", seq)
			}
			if g.Index != uint32(len(s.Guests)) {
				return nil, fmt.Errorf("record %d: guest %d, want %d", seq, g.Index, len(s.Guests))
			}
			if len(s.Guests) >= int(info.Guests) {
				return nil, fmt.Errorf("record %d: more guests than the %d host-info counts", seq, info.Guests)
			}
			g.Channels = make([][][]byte, len(s.Devices))
			s.Guests = append(s.Guests, g)
			cur = g
		case kindHostGuestID:
			g, id, err := decodeGuestID(r.Body)
			if err != nil {
				return nil, fmt.Errorf("record %d: %w", seq, err)
			}
			if cur == nil || g != cur.Index || cur.ID != 0 || len(cur.Bus) > 0 {
				return nil, fmt.Errorf("record %d: id of guest %d not right after its host-guest", seq, g)
			}
			cur.ID = id
		case kindHostBusChunk, kindHostChannelChunk:
			g, dev, data, err := splitChunk(r.Kind, r.Body)
			if err != nil {
				return nil, fmt.Errorf("record %d: %w", seq, err)
			}
			if cur == nil || g != cur.Index {
				return nil, fmt.Errorf("record %d: chunk of guest %d outside its guest", seq, g)
			}
			if r.Kind == kindHostBusChunk {
				if cur.sawChannel || len(cur.Bus)+len(data) > maxHostState {
					return nil, fmt.Errorf("record %d: bus chunk after channel chunks or too large", seq)
				}
				cur.Bus = append(cur.Bus, data...)
				continue
			}
			if uint64(dev) >= uint64(len(s.Devices)) {
				return nil, fmt.Errorf("record %d: device %d of %d", seq, dev, len(s.Devices))
			}
			cur.sawChannel = true
			cur.Channels[dev] = append(cur.Channels[dev], data)
		case kindHostHVSockConn:
			c, err := decodeConnRecord(r.Body)
			if err != nil {
				return nil, fmt.Errorf("record %d: %w", seq, err)
			}
			if int(c.Guest) >= len(s.Guests) || len(s.Conns) >= maxCarriedConns {
				return nil, fmt.Errorf("record %d: hvsock connection of guest %d, %d guests so far, or more than %d connections", seq, c.Guest, len(s.Guests), maxCarriedConns)
			}
			if len(s.Offers) > 0 {
				return nil, fmt.Errorf("record %d: an hvsock connection after the offers", seq)
			}
			s.Conns = append(s.Conns, *c)
			cur = nil // the connections come after every guest
		case kindHostHVSockOffer:
			c, err := decodeConnRecord(r.Body)
			if err != nil {
				return nil, fmt.Errorf("record %d: %w", seq, err)
			}
			if int(c.Guest) >= len(s.Guests) || len(s.Offers) >= maxCarriedConns {
				return nil, fmt.Errorf("record %d: hvsock offer of guest %d, %d guests so far, or more than %d offers", seq, c.Guest, len(s.Guests), maxCarriedConns)
			}
			s.Offers = append(s.Offers, *c)
			cur = nil
		default:
			if r.Critical() {
				return nil, fmt.Errorf("record %d: critical record of unknown kind %#x", seq, uint16(r.Kind))
			}
		}
	}
	if len(s.Guests) != int(info.Guests) {
		return nil, fmt.Errorf("host-info counts %d guests, the state holds %d", info.Guests, len(s.Guests))
	}
	for _, g := range s.Guests {
		if len(g.Bus) == 0 {
			return nil, fmt.Errorf("guest %d has no bus state", g.Index)
		}
		if g.NoServers && g.sawChannel {
			return nil, fmt.Errorf("guest %d has channel states but no servers", g.Index)
		}
	}
	return s, nil
}
