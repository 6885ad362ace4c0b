package hostchaos

import (
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/transport"
)

// The kinds of misbehaviour. Rewrites act on a message of the real host's
// on its way down; guest-request hooks act when the guest asks something;
// injections come unasked, now and then. docs/HOSTILE_HOST.md describes
// each and what the guest does with it.
const (
	// Version negotiation.
	kVersionAcceptRefused = "version-accept-refused" // a refusal turned into acceptance
	kVersionRefuseAll     = "version-refuse-all"     // every version refused
	kVersionBadFields     = "version-bad-fields"     // accepted, with connection id 0, a bad state, unasked features or a size no version has
	// Offers.
	kOfferDuplicate     = "offer-duplicate"       // the same offer twice
	kOfferReusedID      = "offer-reused-id"       // another device's offer under the same channel id
	kOfferBadID         = "offer-bad-id"          // channel id 0 or past 2047
	kOfferRescindAtOnce = "offer-rescind-at-once" // rescinded right after it was made
	kOfferAfterAll      = "offer-after-all-delivered"
	kOfferAfterUnload   = "offer-after-unload"
	// Answers to the guest's requests.
	kGpadlCreatedDropped   = "gpadl-created-dropped"
	kGpadlCreatedStatus    = "gpadl-created-bad-status"
	kGpadlCreatedTwice     = "gpadl-created-twice"
	kGpadlCreatedWrongCh   = "gpadl-created-wrong-channel"
	kOpenResultDropped     = "open-result-dropped"
	kOpenResultStatus      = "open-result-bad-status"
	kOpenResultTwice       = "open-result-twice"
	kTorndownDropped       = "gpadl-torndown-dropped"
	kUnloadCompleteDropped = "unload-complete-dropped"
	// Any message of the host's.
	kMsgTruncated = "message-truncated"
	kMsgOversized = "message-oversized"
	kMsgDelayed   = "message-delayed"
	kStallForever = "stall-forever" // the host's messages dropped from some point on
	// At a guest's request.
	kRescindDuringOpen    = "rescind-during-open"
	kSignalBeforeOpen     = "signal-before-open-result"
	kFloodBeforeOpen      = "signal-flood-before-open-result"
	kDisconnectMidRequest = "disconnect-mid-request"
	kServicingPause       = "servicing-pause"      // the control plane paused, as across a servicing
	kServicingDisconnect  = "servicing-disconnect" // a servicing that fails: the connection drops right after an open or a GPADL
	// The signals of open channels.
	kSignalToHostDropped  = "signal-to-host-dropped"  // the guest's request signal lost: the host never answers
	kSignalToHostDelayed  = "signal-to-host-delayed"  // and answers late
	kSignalToGuestDropped = "signal-to-guest-dropped" // the host's signal lost: the guest is not woken
	kSignalToGuestDelayed = "signal-to-guest-delayed"
	// Unasked.
	kUnaskedGpadlCreated   = "unasked-gpadl-created"
	kUnaskedOpenResult     = "unasked-open-result"
	kUnaskedRescind        = "unasked-rescind"
	kUnaskedUnloadComplete = "unasked-unload-complete"
	kUnaskedTLResult       = "unasked-tl-connect-result"
	kUnaskedVersion        = "unasked-version-response"
	kUnknownMessage        = "unknown-message"
	kSignalFlood           = "signal-flood"
	// Ring abuse, in the ring the guest reads.
	kRingIndexPastEnd     = "ring-index-past-end"
	kRingIndexUnaligned   = "ring-index-unaligned"
	kRingLengthLie        = "ring-descriptor-length-lie"
	kRingUnknownType      = "ring-unknown-packet-type"
	kRingCompletionUnsent = "ring-completion-unsent"
	kRingReplay           = "ring-packet-replayed"
	kRingXferBadRange     = "ring-transfer-page-bad-range"
	kRingOversized        = "ring-packet-oversized"
)

// hookKinds act on the traffic; injectKinds come unasked.
var (
	hookKinds = []string{
		kVersionAcceptRefused, kVersionRefuseAll, kVersionBadFields,
		kOfferDuplicate, kOfferReusedID, kOfferBadID, kOfferRescindAtOnce, kOfferAfterAll, kOfferAfterUnload,
		kGpadlCreatedDropped, kGpadlCreatedStatus, kGpadlCreatedTwice, kGpadlCreatedWrongCh,
		kOpenResultDropped, kOpenResultStatus, kOpenResultTwice, kTorndownDropped, kUnloadCompleteDropped,
		kMsgTruncated, kMsgOversized, kMsgDelayed, kStallForever,
		kRescindDuringOpen, kSignalBeforeOpen, kFloodBeforeOpen, kDisconnectMidRequest,
		kServicingPause, kServicingDisconnect,
		kSignalToHostDropped, kSignalToHostDelayed, kSignalToGuestDropped, kSignalToGuestDelayed,
	}
	injectKinds = []string{
		kUnaskedGpadlCreated, kUnaskedOpenResult, kUnaskedRescind, kUnaskedUnloadComplete,
		kUnaskedTLResult, kUnaskedVersion, kUnknownMessage, kSignalFlood,
		kRingIndexPastEnd, kRingIndexUnaligned, kRingLengthLie, kRingUnknownType,
		kRingCompletionUnsent, kRingReplay, kRingXferBadRange, kRingOversized,
	}
)

// Kinds are every kind of misbehaviour, sorted.
func Kinds() []string {
	return slices.Sorted(slices.Values(append(slices.Clone(hookKinds), injectKinds...)))
}

// arm picks what a session may do: a few rewrites or hooks, and, in most
// sessions, a few kinds of injection, among only if it is set. One
// session in eight is served faithfully, so that guests see a good host
// now and then too.
func arm(rng *rand.Rand, only []string) map[string]bool {
	hooks, injects := hookKinds, injectKinds
	if only != nil {
		keep := func(k string) bool { return !slices.Contains(only, k) }
		hooks = slices.DeleteFunc(slices.Clone(hooks), keep)
		injects = slices.DeleteFunc(slices.Clone(injects), keep)
	}
	armed := make(map[string]bool)
	if rng.IntN(8) == 0 {
		return armed
	}
	if len(hooks) > 0 {
		for range 1 + rng.IntN(3) {
			armed[hooks[rng.IntN(len(hooks))]] = true
		}
	}
	if len(injects) > 0 && rng.IntN(4) != 0 {
		for range 1 + rng.IntN(4) {
			armed[injects[rng.IntN(len(injects))]] = true
		}
	}
	return armed
}

// Failure statuses a hostile host answers with.
var badStatuses = []uint32{0xC0000001, 0xC000009A, 0xC0000022, 0x80000005, 1}

// out is a message for the guest, sent after delay.
type out struct {
	msg   []byte
	delay time.Duration
}

// fires reports whether an armed kind acts on this occasion: often, not
// always, so that the same session sees it both ways.
func (s *session) fires(kind string, rng *rand.Rand) bool {
	return s.armed[kind] && rng.IntN(3) != 0
}

// downHooks rewrites one of the host's messages into what the guest gets.
func (s *session) downHooks(m protocol.Message, msg []byte) []out {
	rng := s.downRng
	one := []out{{msg: msg}}
	switch m := m.(type) {
	case *protocol.VersionResponse:
		switch {
		case !m.VersionSupported && s.fires(kVersionAcceptRefused, rng):
			s.did(kVersionAcceptRefused)
			m.VersionSupported, m.VersionOrConnectionID = true, 1+rng.Uint32N(100)
			return []out{{msg: protocol.Marshal(m)}}
		case m.VersionSupported && s.fires(kVersionRefuseAll, rng):
			s.did(kVersionRefuseAll)
			m.VersionSupported = false
			return []out{{msg: protocol.Marshal(m)}}
		case m.VersionSupported && s.fires(kVersionBadFields, rng):
			s.did(kVersionBadFields)
			switch rng.IntN(4) {
			case 0:
				m.VersionOrConnectionID = 0
			case 1:
				m.ConnectionState = protocol.ConnectionState(1 + rng.IntN(255))
			case 2:
				m.HasFeatures, m.SupportedFeatures = true, protocol.FeatureFlags(rng.Uint32())
			default:
				b := protocol.Marshal(m)
				return []out{{msg: append(b, make([]byte, 1+rng.IntN(7))...)}}
			}
			return []out{{msg: protocol.Marshal(m)}}
		}
	case *protocol.OfferChannel:
		switch {
		case s.fires(kOfferDuplicate, rng):
			s.did(kOfferDuplicate)
			return []out{{msg: msg}, {msg: msg}}
		case s.fires(kOfferReusedID, rng):
			s.did(kOfferReusedID)
			o := *m
			o.InterfaceType, o.InterfaceInstance = randomGUID(rng), randomGUID(rng)
			return []out{{msg: msg}, {msg: protocol.Marshal(&o)}}
		case s.fires(kOfferBadID, rng):
			s.did(kOfferBadID)
			o := *m
			o.ChannelID = []uint32{0, protocol.MaxChannelID + 1 + rng.Uint32N(1000), ^uint32(0)}[rng.IntN(3)]
			return []out{{msg: protocol.Marshal(&o)}, {msg: msg}}
		case s.fires(kOfferRescindAtOnce, rng):
			s.did(kOfferRescindAtOnce)
			return []out{{msg: msg}, {msg: protocol.Marshal(&protocol.RescindChannelOffer{ChannelID: m.ChannelID})}}
		}
	case *protocol.AllOffersDelivered:
		if s.fires(kOfferAfterAll, rng) {
			s.did(kOfferAfterAll)
			return []out{{msg: msg}, {msg: s.strayOffer(rng)}}
		}
	case *protocol.UnloadComplete:
		switch {
		case s.fires(kUnloadCompleteDropped, rng):
			s.did(kUnloadCompleteDropped)
			return nil
		case s.fires(kOfferAfterUnload, rng):
			s.did(kOfferAfterUnload)
			return []out{{msg: msg}, {msg: s.strayOffer(rng)}}
		}
	case *protocol.GpadlCreated:
		switch {
		case s.fires(kGpadlCreatedDropped, rng):
			s.did(kGpadlCreatedDropped)
			return nil
		case s.fires(kGpadlCreatedStatus, rng):
			s.did(kGpadlCreatedStatus)
			m.Status = badStatuses[rng.IntN(len(badStatuses))]
			return []out{{msg: protocol.Marshal(m)}}
		case s.fires(kGpadlCreatedTwice, rng):
			s.did(kGpadlCreatedTwice)
			return []out{{msg: msg}, {msg: msg, delay: time.Duration(rng.IntN(20)) * time.Millisecond}}
		case s.fires(kGpadlCreatedWrongCh, rng):
			s.did(kGpadlCreatedWrongCh)
			m.ChannelID ^= 1 + rng.Uint32N(7)
			return []out{{msg: protocol.Marshal(m)}}
		}
	case *protocol.OpenChannelResult:
		switch {
		case s.fires(kOpenResultDropped, rng):
			s.did(kOpenResultDropped)
			return nil
		case s.fires(kOpenResultStatus, rng):
			s.did(kOpenResultStatus)
			m.Status = badStatuses[rng.IntN(len(badStatuses))]
			return []out{{msg: protocol.Marshal(m)}}
		case s.fires(kOpenResultTwice, rng):
			s.did(kOpenResultTwice)
			return []out{{msg: msg}, {msg: msg, delay: time.Duration(rng.IntN(20)) * time.Millisecond}}
		}
	case *protocol.GpadlTorndown:
		if s.fires(kTorndownDropped, rng) {
			s.did(kTorndownDropped)
			return nil
		}
	}
	switch {
	case s.fires(kMsgTruncated, rng) && len(msg) > 1:
		s.did(kMsgTruncated)
		return []out{{msg: msg[:1+rng.IntN(len(msg)-1)]}}
	case s.fires(kMsgOversized, rng) && len(msg) < transport.MaxMessageSize:
		s.did(kMsgOversized)
		pad := make([]byte, 1+rng.IntN(transport.MaxMessageSize-len(msg)))
		for i := range pad {
			pad[i] = byte(rng.Uint32())
		}
		return []out{{msg: append(msg, pad...)}}
	case s.fires(kMsgDelayed, rng):
		s.did(kMsgDelayed)
		return []out{{msg: msg, delay: time.Duration(rng.Int64N(int64(maxDelay)))}}
	case s.armed[kStallForever] && rng.IntN(4) == 0:
		s.did(kStallForever)
		s.mu.Lock()
		s.muted = true
		s.mu.Unlock()
		return nil
	}
	return one
}

// strayOffer is an offer the guest did not ask for: a copy of one it has
// with a new instance under a free or a taken channel id.
func (s *session) strayOffer(rng *rand.Rand) []byte {
	s.mu.Lock()
	var o protocol.OfferChannel
	for _, x := range s.offers {
		o = x
		break
	}
	s.mu.Unlock()
	o.InterfaceInstance = randomGUID(rng)
	if o.ChannelID == 0 || rng.IntN(2) == 0 {
		o.ChannelID = 1 + rng.Uint32N(protocol.MaxChannelID)
	}
	return protocol.Marshal(&o)
}

// upHooks act on a guest's request before it goes up. False if the
// session ended.
func (s *session) upHooks(m protocol.Message) bool {
	rng := s.upRng
	request := false
	switch m.(type) {
	case *protocol.OpenChannel, *protocol.GpadlHeader, *protocol.RequestOffers, *protocol.TLConnectRequest,
		*protocol.CloseChannel, *protocol.GpadlTeardown, *protocol.Unload:
		request = true
	}
	if open, ok := m.(*protocol.OpenChannel); ok {
		id := open.ChannelID
		switch {
		case s.fires(kRescindDuringOpen, rng):
			s.did(kRescindDuringOpen)
			if !s.sendGuest(protocol.Marshal(&protocol.RescindChannelOffer{ChannelID: id})) {
				return false
			}
		case s.fires(kSignalBeforeOpen, rng):
			if ev := s.guestEvent(id); ev != nil {
				s.did(kSignalBeforeOpen)
				ev.Signal() //nolint:errcheck // a guest that pinned its own event only hurts itself
			}
		case s.fires(kFloodBeforeOpen, rng):
			if ev := s.guestEvent(id); ev != nil {
				s.did(kFloodBeforeOpen)
				flood(ev)
			}
		case s.fires(kServicingDisconnect, rng):
			s.didKnown(kServicingDisconnect, "connection dropped")
			s.finish(endChaos)
			return false
		}
	}
	if !request {
		return true
	}
	switch {
	case s.fires(kDisconnectMidRequest, rng) && rng.IntN(2) == 0:
		s.didKnown(kDisconnectMidRequest, "connection dropped")
		s.finish(endChaos)
		return false
	case s.fires(kServicingDisconnect, rng) && rng.IntN(3) == 0:
		s.didKnown(kServicingDisconnect, "connection dropped")
		s.finish(endChaos)
		return false
	case s.fires(kServicingPause, rng):
		s.did(kServicingPause)
		s.gate.Lock()
		ok := s.sleep(time.Duration(rng.Int64N(int64(maxPause))))
		s.gate.Unlock()
		return ok
	}
	return true
}

// guestEvent is the event that signals the guest on channel id, if the
// guest handed one over.
func (s *session) guestEvent(id uint32) *transport.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch := s.chans[id]; ch != nil {
		return ch.toGuest
	}
	return nil
}

// flood signals ev floodSignals times.
func flood(ev *transport.Event) {
	for range floodSignals {
		if ev.Signal() != nil {
			return
		}
	}
}

// injectOne does one unasked misbehaviour of kind. False if the session
// ended.
func (s *session) injectOne(kind string, rng *rand.Rand) bool {
	var msg []byte
	switch kind {
	case kUnaskedGpadlCreated:
		msg = protocol.Marshal(&protocol.GpadlCreated{ChannelID: s.someChannel(rng), GpadlID: 0xE1E10 + rng.Uint32N(64), Status: []uint32{0, badStatuses[0]}[rng.IntN(2)]})
	case kUnaskedOpenResult:
		msg = protocol.Marshal(&protocol.OpenChannelResult{ChannelID: s.someChannel(rng), OpenID: rng.Uint32N(64), Status: []uint32{0, badStatuses[0]}[rng.IntN(2)]})
	case kUnaskedRescind:
		msg = protocol.Marshal(&protocol.RescindChannelOffer{ChannelID: s.someChannel(rng)})
	case kUnaskedUnloadComplete:
		msg = protocol.Marshal(&protocol.UnloadComplete{})
	case kUnaskedTLResult:
		msg = protocol.Marshal(&protocol.TLConnectRequestResult{EndpointID: randomGUID(rng), ServiceID: randomGUID(rng), Status: []uint32{0, protocol.StatusConnectionRefused}[rng.IntN(2)]})
	case kUnaskedVersion:
		msg = protocol.Marshal(&protocol.VersionResponse{VersionSupported: rng.IntN(2) == 0, VersionOrConnectionID: rng.Uint32N(4)})
	case kUnknownMessage:
		msg = make([]byte, 8+rng.IntN(transport.MaxMessageSize-8))
		binary.LittleEndian.PutUint32(msg, 30+rng.Uint32N(1000))
	case kSignalFlood:
		ch := s.someOpen(rng)
		if ch == nil || ch.toGuest == nil {
			return true
		}
		s.did(kind)
		flood(ch.toGuest)
		return true
	default:
		ch := s.someOpen(rng)
		if ch == nil || ch.in == nil {
			return true
		}
		if kind == kRingReplay && ch.stream {
			// Not into a byte stream: the guest could not tell the copy
			// from the host sending the same bytes again, and the
			// campaign checks that hvsock's bytes come back once, in
			// order.
			return true
		}
		if abuseRing(kind, ch.in, rng) {
			s.did(kind)
			if ch.toGuest != nil {
				ch.toGuest.Signal() //nolint:errcheck // as in flood
			}
		}
		return true
	}
	s.did(kind)
	return s.sendGuest(msg)
}

// someChannel is a channel id the guest knows, or now and then one it
// does not.
func (s *session) someChannel(rng *rand.Rand) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.offers) == 0 || rng.IntN(4) == 0 {
		return 1 + rng.Uint32N(protocol.MaxChannelID)
	}
	ids := make([]uint32, 0, len(s.offers))
	for id := range s.offers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids[rng.IntN(len(ids))]
}

// someOpen is one of the channels the guest opened, or nil.
func (s *session) someOpen(rng *rand.Rand) *openChan {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.chans) == 0 {
		return nil
	}
	ids := make([]uint32, 0, len(s.chans))
	for id := range s.chans {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return s.chans[ids[rng.IntN(len(ids))]]
}

func randomGUID(rng *rand.Rand) protocol.GUID {
	var g protocol.GUID
	binary.LittleEndian.PutUint64(g[:8], rng.Uint64())
	binary.LittleEndian.PutUint64(g[8:], rng.Uint64())
	return g
}

// IsRingAbuse reports whether kind writes into a guest's ring.
func IsRingAbuse(kind string) bool {
	switch kind {
	case kRingIndexPastEnd, kRingIndexUnaligned, kRingLengthLie, kRingUnknownType,
		kRingCompletionUnsent, kRingReplay, kRingXferBadRange, kRingOversized:
		return true
	}
	return false
}
