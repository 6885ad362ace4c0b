package chaos

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/ring"
	"golang.org/x/sys/unix"
)

// action is one kind of misbehaviour. do returns the outcome to count.
type action struct {
	kind   string
	weight int
	do     func(s *session) string
}

// rawActions are what a raw session picks from, by weight.
var rawActions = []action{
	// Control messages.
	{"msg-garbage", 4, (*session).msgGarbage},
	{"msg-truncated", 4, (*session).msgTruncated},
	{"msg-trailing-bytes", 2, (*session).msgTrailing},
	{"msg-unknown-type", 3, (*session).msgUnknownType},
	{"msg-host-only-type", 3, (*session).msgHostOnly},
	{"msg-second-contact", 1, (*session).msgSecondContact},
	{"msg-second-request-offers", 1, (*session).msgSecondRequestOffers},
	{"msg-release-not-rescinded", 2, (*session).msgReleaseNotRescinded},
	{"msg-modify-not-open", 1, (*session).msgModifyNotOpen},
	{"close-unopened", 2, (*session).closeUnopened},
	{"unload-and-recontact", 1, (*session).unloadRecontact},
	// GPADLs.
	{"gpadl-outside-memory", 3, (*session).gpadlOutside},
	{"gpadl-bogus-pfn", 3, (*session).gpadlBogusPFN},
	{"gpadl-overlapping", 2, (*session).gpadlOverlap},
	{"gpadl-bad-range", 3, (*session).gpadlBadRange},
	{"gpadl-bad-counts", 3, (*session).gpadlBadCounts},
	{"gpadl-unknown-channel", 2, (*session).gpadlUnknownChannel},
	{"gpadl-duplicate-id", 2, (*session).gpadlDuplicate},
	{"gpadl-body-unknown", 2, (*session).gpadlBodyUnknown},
	{"gpadl-body-overrun", 2, (*session).gpadlBodyOverrun},
	{"gpadl-half-sent", 2, (*session).gpadlHalf},
	{"gpadl-teardown-unknown", 2, (*session).gpadlTeardownUnknown},
	{"gpadl-burst", 1, (*session).gpadlBurst},
	{"gpadl-exhaust", 1, (*session).gpadlExhaust},
	{"gpadl-teardown", 1, (*session).gpadlTeardown},
	// Opens.
	{"open-bad-offset", 2, (*session).openBadOffset},
	{"open-foreign-gpadl", 2, (*session).openForeignGpadl},
	{"open-corrupt-ring", 2, (*session).openCorruptRing},
	{"open-no-events", 2, (*session).openNoEvents},
	{"open-twice", 2, (*session).openTwice},
	{"open-valid", 2, (*session).openValid},
	{"close-open", 1, (*session).closeOpen},
	// Rings of open channels and their signals.
	{"ring-write-index-garbage", 2, (*session).ringWriteIndexGarbage},
	{"ring-write-index-past-end", 2, (*session).ringWriteIndexPastEnd},
	{"ring-bad-descriptor", 4, (*session).ringBadDescriptor},
	{"ring-read-index-garbage", 2, (*session).ringReadIndexGarbage},
	{"ring-control-garbage", 2, (*session).ringControlGarbage},
	{"ring-rewrite-while-read", 2, (*session).ringRewriteWhileRead},
	{"ring-fill-never-drain", 2, (*session).ringFillNeverDrain},
	{"signal-flood", 2, (*session).signalFlood},
	{"event-blocking-pinned", 2, (*session).eventBlockingPinned},
	// The control socket.
	{"socket-stop-reading", 1, (*session).stopReading},
}

func pick(rng *rand.Rand, actions []action) action {
	total := 0
	for _, a := range actions {
		total += a.weight
	}
	n := rng.IntN(total)
	for _, a := range actions {
		if n < a.weight {
			return a
		}
		n -= a.weight
	}
	return actions[len(actions)-1]
}

// misbehave runs actions picked by weight for one session's length, or
// until the host ends the session, counting each outcome; then it leaves.
func (s *session) misbehave(ctx context.Context, rng *rand.Rand, rep *Report, actions []action) {
	end := time.Now().Add(sessionLength(rng))
	for ctx.Err() == nil && time.Now().Before(end) {
		a := pick(rng, actions)
		out := a.do(s)
		if s.gone() && !strings.Contains(out, outDisconnected) {
			out += ", then " + outDisconnected
		}
		rep.add(a.kind, out)
		if s.gone() {
			rep.SessionsEndedByHost++
			return
		}
		pause(ctx, rng)
	}
	rep.add("leave", s.leave())
}

// rawSession is a session that speaks the control plane itself, for
// everything: contact, offers, then random misbehaviour until its time is
// up or the host ends it.
func rawSession(ctx context.Context, cfg Config, rng *rand.Rand, rep *Report) error {
	s, err := dial(ctx, cfg, rng, rep, true)
	if err != nil {
		return err
	}
	defer s.close()
	// Now and then the session misbehaves before contact.
	if rng.IntN(6) == 0 {
		rep.add("msg-before-contact", s.msgBeforeContact())
	}
	if out := s.contact(); out != "" {
		rep.add("contact", out)
		if s.gone() {
			rep.SessionsEndedByHost++
		}
		return nil
	}
	s.misbehave(ctx, rng, rep, rawActions)
	return nil
}

// leave is how a session ends: with whatever it opened still open, and
// half the time in the middle of a request whose answer it will not
// wait for.
func (s *session) leave() string {
	what := fmt.Sprintf("with %d channels open", min(len(s.open), 2))
	if s.rng.IntN(2) == 0 {
		return what
	}
	ch := s.channel()
	var m protocol.Message
	switch s.rng.IntN(4) {
	case 0:
		m = &protocol.GpadlHeader{ChannelID: ch, GpadlID: s.gpadlID(), RangeBufferLen: 16, RangeCount: 1, Data: []uint64{4096, s.pages(1)}}
	case 1:
		m = &protocol.OpenChannel{ChannelID: ch, OpenID: ch, RingGpadlID: s.nextGpadl, DownstreamRingPageOffset: 2}
	case 2:
		m = &protocol.Unload{}
	default:
		if len(s.gpadls) == 0 {
			return what
		}
		g := s.gpadls[s.rng.IntN(len(s.gpadls))]
		m = &protocol.GpadlTeardown{ChannelID: g.channel, GpadlID: g.id}
	}
	s.send(m)
	return fmt.Sprintf("%s, right after a %v", what, m.Type())
}

// Control messages.

// guestTypes are the message types a guest may send.
var guestTypes = []protocol.MessageType{
	protocol.TypeRequestOffers, protocol.TypeOpenChannel, protocol.TypeCloseChannel,
	protocol.TypeGpadlHeader, protocol.TypeGpadlBody, protocol.TypeGpadlTeardown,
	protocol.TypeRelIDReleased, protocol.TypeInitiateContact, protocol.TypeUnload,
	protocol.TypeModifyChannel, protocol.TypeOpenReservedChannel, protocol.TypeCloseReservedChannel,
	protocol.TypeTLConnectRequest, protocol.TypeModifyConnection, protocol.TypePauseResponse,
}

func (s *session) header(t protocol.MessageType, n int) []byte {
	b := make([]byte, n)
	s.scribble(b)
	if n >= 4 {
		binary.LittleEndian.PutUint32(b, uint32(t))
	}
	return b
}

func (s *session) sendThenQuiet(b []byte) string {
	if out := s.sendBytes(b); out != "" {
		return out
	}
	return s.quiet()
}

func (s *session) msgBeforeContact() string {
	return s.sendThenQuiet(s.header(guestTypes[s.rng.IntN(len(guestTypes))], 8+s.rng.IntN(200)))
}

func (s *session) msgGarbage() string {
	return s.sendThenQuiet(s.header(guestTypes[s.rng.IntN(len(guestTypes))], 1+s.rng.IntN(transportMax)))
}

// transportMax is the largest control message the transport carries.
const transportMax = protocol.MaxMessageSize

// wellFormed is a random well-formed guest message about the session's
// channels.
func (s *session) wellFormed() protocol.Message {
	ch := s.channel()
	switch s.rng.IntN(6) {
	case 0:
		return &protocol.OpenChannel{ChannelID: ch, RingGpadlID: s.nextGpadl, DownstreamRingPageOffset: 2}
	case 1:
		return &protocol.GpadlHeader{ChannelID: ch, GpadlID: s.gpadlID(), RangeBufferLen: 16, RangeCount: 1, Data: []uint64{4096, 1}}
	case 2:
		return &protocol.GpadlBody{GpadlID: s.nextGpadl, Data: []uint64{3}}
	case 3:
		return &protocol.GpadlTeardown{ChannelID: ch, GpadlID: s.nextGpadl}
	case 4:
		return &protocol.ModifyChannel{ChannelID: ch, TargetVP: 1}
	}
	return &protocol.InitiateContact{VersionRequested: protocol.VersionCopper, MessageSINT: 2}
}

func (s *session) msgTruncated() string {
	b := protocol.Marshal(s.wellFormed())
	return s.sendThenQuiet(b[:1+s.rng.IntN(len(b)-1)])
}

func (s *session) msgTrailing() string {
	b := protocol.Marshal(&protocol.CloseChannel{ChannelID: 0xFFFF})
	extra := make([]byte, 1+s.rng.IntN(transportMax-len(b)))
	s.scribble(extra)
	return s.sendThenQuiet(append(b, extra...))
}

func (s *session) msgUnknownType() string {
	t := protocol.MessageType(30 + s.rng.IntN(1000))
	if s.rng.IntN(4) == 0 {
		t = protocol.MessageType(s.rng.Uint32())
	}
	return s.sendThenQuiet(s.header(t, 8+s.rng.IntN(transportMax-8)))
}

func (s *session) msgHostOnly() string {
	ms := []protocol.Message{
		&protocol.OfferChannel{ChannelID: 1},
		&protocol.AllOffersDelivered{},
		&protocol.VersionResponse{VersionSupported: true},
		&protocol.GpadlCreated{ChannelID: 1, GpadlID: 1},
		&protocol.GpadlTorndown{GpadlID: 1},
		&protocol.OpenChannelResult{ChannelID: 1},
		&protocol.RescindChannelOffer{ChannelID: 1},
		&protocol.UnloadComplete{},
	}
	return s.sendThenQuiet(protocol.Marshal(ms[s.rng.IntN(len(ms))]))
}

func (s *session) msgSecondContact() string {
	return s.sendThenQuiet(protocol.Marshal(&protocol.InitiateContact{VersionRequested: protocol.VersionWin10}))
}

func (s *session) msgSecondRequestOffers() string {
	return s.sendThenQuiet(protocol.Marshal(&protocol.RequestOffers{}))
}

func (s *session) msgReleaseNotRescinded() string {
	return s.sendThenQuiet(protocol.Marshal(&protocol.RelIDReleased{ChannelID: s.channel()}))
}

func (s *session) msgModifyNotOpen() string {
	return s.sendThenQuiet(protocol.Marshal(&protocol.ModifyChannel{ChannelID: 2000 + uint32(s.rng.IntN(40))}))
}

func (s *session) closeUnopened() string {
	ch := s.channel()
	if s.open[ch] != nil {
		ch = 1500
	}
	return s.sendThenQuiet(protocol.Marshal(&protocol.CloseChannel{ChannelID: ch}))
}

// unloadRecontact unloads (the host drops every channel and GPADL) and
// starts over: legitimate, but in the middle of everything else.
func (s *session) unloadRecontact() string {
	if out := s.send(&protocol.Unload{}); out != "" {
		return out
	}
	m, out := s.await(func(m protocol.Message) bool { _, ok := m.(*protocol.UnloadComplete); return ok }, answerWait)
	if m == nil && s.version >= protocol.TypeUnloadComplete.MinVersion() {
		return out
	}
	for _, r := range s.open {
		r.closeEvents()
	}
	clear(s.open)
	s.gpadls = nil
	if out := s.contact(); out != "" {
		return "unloaded, then contact: " + out
	}
	return outAnswered
}

// GPADLs.

func (s *session) gpadlOutcomeOf(ch, id uint32, ranges []gpa.Range) string {
	st, ok, out := s.createGpadl(ch, id, ranges)
	if !ok {
		return out
	}
	if st == 0 {
		s.gpadls = append(s.gpadls, gpadlRef{ch, id})
	}
	return gpadlOutcome(st)
}

func (s *session) gpadlOutside() string {
	pfn := s.mem.Pages() + uint64(s.rng.IntN(1<<20))
	return s.gpadlOutcomeOf(s.channel(), s.gpadlID(), []gpa.Range{pageRange(pfn, 1+s.rng.IntN(4))})
}

func (s *session) gpadlBogusPFN() string {
	r := pageRange(s.pages(2), 2)
	r.PFNs[s.rng.IntN(2)] = s.rng.Uint64() | 1<<50
	return s.gpadlOutcomeOf(s.channel(), s.gpadlID(), []gpa.Range{r})
}

// gpadlOverlap: the same pages twice, in one range and across two.
func (s *session) gpadlOverlap() string {
	pfn := s.pages(3)
	a, b := pageRange(pfn, 3), pageRange(pfn+1, 2)
	if s.rng.IntN(2) == 0 {
		a.PFNs[2] = a.PFNs[0]
		return s.gpadlOutcomeOf(s.channel(), s.gpadlID(), []gpa.Range{a})
	}
	return s.gpadlOutcomeOf(s.channel(), s.gpadlID(), []gpa.Range{a, b})
}

// rawGpadl sends a header with the given words as they are, and the
// counts claimed.
func (s *session) rawGpadl(ch, id uint32, bufLen, count uint16, words []uint64) string {
	n := min(len(words), protocol.GpadlHeaderMaxWords)
	if out := s.send(&protocol.GpadlHeader{ChannelID: ch, GpadlID: id, RangeBufferLen: bufLen, RangeCount: count, Data: words[:n]}); out != "" {
		return out
	}
	if n == len(words) {
		st, ok, out := s.awaitCreatedWithin(id, maybeWait)
		if !ok {
			if out == outNoAnswer {
				return s.quiet()
			}
			return out
		}
		return gpadlOutcome(st)
	}
	return s.quiet()
}

// gpadlBadRange: a range whose byte count and offset do not fit its
// pages.
func (s *session) gpadlBadRange() string {
	pfn := s.pages(2)
	var count, offset uint32
	switch s.rng.IntN(4) {
	case 0:
		count, offset = 0, 0
	case 1:
		count, offset = 4096, 4096+uint32(s.rng.IntN(1<<20))
	case 2:
		count, offset = 3*4096, 0 // three pages' worth over two PFNs
	default:
		count, offset = s.rng.Uint32(), s.rng.Uint32()
	}
	words := []uint64{uint64(count) | uint64(offset)<<32, pfn, pfn + 1}
	return s.rawGpadl(s.channel(), s.gpadlID(), 24, 1, words)
}

func (s *session) gpadlBadCounts() string {
	pfn := s.pages(1)
	words := []uint64{4096, pfn}
	bufLen, count := uint16(16), uint16(1)
	switch s.rng.IntN(4) {
	case 0:
		count = 0
	case 1:
		count = uint16(2 + s.rng.IntN(1000))
	case 2:
		bufLen = uint16(s.rng.IntN(16)) // shorter than what is sent
	default:
		bufLen = 0xFFF8 // announces bodies that never come (half-built)
	}
	return s.rawGpadl(s.channel(), s.gpadlID(), bufLen, count, words)
}

func (s *session) gpadlUnknownChannel() string {
	return s.gpadlOutcomeOf(uint32(1000+s.rng.IntN(1047)), s.gpadlID(), []gpa.Range{pageRange(s.pages(1), 1)})
}

func (s *session) gpadlDuplicate() string {
	if len(s.gpadls) == 0 {
		s.gpadlOutcomeOf(s.channel(), s.gpadlID(), []gpa.Range{pageRange(s.pages(1), 1)})
	}
	if len(s.gpadls) == 0 {
		return "no GPADL to duplicate"
	}
	g := s.gpadls[s.rng.IntN(len(s.gpadls))]
	st, ok, out := s.createGpadl(s.channel(), g.id, []gpa.Range{pageRange(s.pages(1), 1)})
	if !ok {
		return out
	}
	return gpadlOutcome(st)
}

func (s *session) gpadlBodyUnknown() string {
	data := make([]uint64, 1+s.rng.IntN(protocol.GpadlBodyMaxWords))
	return s.sendThenQuiet(protocol.Marshal(&protocol.GpadlBody{MessageNumber: 1, GpadlID: s.gpadlID(), Data: data}))
}

// gpadlBodyOverrun: a header announcing one more word than it carries,
// then a body with many.
func (s *session) gpadlBodyOverrun() string {
	ch, id := s.channel(), s.gpadlID()
	pfn := s.pages(1)
	if out := s.send(&protocol.GpadlHeader{ChannelID: ch, GpadlID: id, RangeBufferLen: 24, RangeCount: 1, Data: []uint64{2 * 4096, pfn}}); out != "" {
		return out
	}
	data := make([]uint64, protocol.GpadlBodyMaxWords)
	for i := range data {
		data[i] = pfn
	}
	if out := s.send(&protocol.GpadlBody{MessageNumber: 1, GpadlID: id, Data: data}); out != "" {
		return out
	}
	st, ok, out := s.awaitCreated(id)
	if !ok {
		return out
	}
	return gpadlOutcome(st)
}

// gpadlHalf leaves a GPADL half-sent for good.
func (s *session) gpadlHalf() string {
	pfns := s.pages(64)
	r := pageRange(pfns, 64)
	msgs, err := protocol.NewGpadlMessages(s.channel(), s.gpadlID(), []gpa.Range{r})
	if err != nil || len(msgs) < 2 {
		return "not sent"
	}
	for _, m := range msgs[:1+s.rng.IntN(len(msgs)-1)] {
		if out := s.send(m); out != "" {
			return out
		}
	}
	return s.quiet()
}

func (s *session) gpadlTeardownUnknown() string {
	return s.sendThenQuiet(protocol.Marshal(&protocol.GpadlTeardown{ChannelID: s.channel(), GpadlID: s.gpadlID()}))
}

// gpadlBurst creates GPADLs quickly, without tearing them down: the
// per-guest GPADL limit is what should stop it.
func (s *session) gpadlBurst() string {
	n := 16 + s.rng.IntN(48)
	ch := s.channel()
	counts := map[string]int{}
	for range n {
		counts[s.gpadlOutcomeOf(ch, s.gpadlID(), []gpa.Range{pageRange(s.pages(1), 1)})]++
		if s.gone() {
			return outDisconnected
		}
	}
	best, bestN := "", 0
	for _, o := range sortedKeys(counts) {
		if counts[o] > bestN {
			best, bestN = o, counts[o]
		}
	}
	return best
}

// exhaustCount is how many GPADLs gpadlExhaust asks for: past the host's
// default per-guest limit (host.DefaultMaxGpadls, 1024).
const exhaustCount = 1100

// gpadlExhaust asks for more one-page GPADLs than a guest may have, all
// at once, then reads the answers: the first ones are created, the rest
// refused. They are left in place.
func (s *session) gpadlExhaust() string {
	ch := s.channel()
	first := s.gpadlID()
	s.nextGpadl += exhaustCount - 1
	pfn := s.pages(1)
	for i := range uint32(exhaustCount) {
		if out := s.send(&protocol.GpadlHeader{ChannelID: ch, GpadlID: first + i, RangeBufferLen: 16, RangeCount: 1, Data: []uint64{4096, pfn}}); out != "" {
			return out
		}
	}
	counts := map[string]int{}
	for range exhaustCount {
		m, out := s.await(func(m protocol.Message) bool {
			c, ok := m.(*protocol.GpadlCreated)
			return ok && c.GpadlID-first < exhaustCount
		}, answerWait)
		if m == nil {
			counts[out]++
			break
		}
		c := m.(*protocol.GpadlCreated)
		counts[gpadlOutcome(c.Status)]++
		if c.Status == 0 {
			s.gpadls = append(s.gpadls, gpadlRef{ch, c.GpadlID})
		}
	}
	parts := make([]string, 0, len(counts))
	for _, o := range sortedKeys(counts) {
		parts = append(parts, fmt.Sprintf("%s %d", o, counts[o]))
	}
	return strings.Join(parts, ", ")
}

// gpadlTeardown tears one GPADL down legitimately, whether a channel
// uses it as its ring or not.
func (s *session) gpadlTeardown() string {
	if len(s.gpadls) == 0 {
		return "no GPADL to tear down"
	}
	i := s.rng.IntN(len(s.gpadls))
	g := s.gpadls[i]
	s.gpadls = append(s.gpadls[:i], s.gpadls[i+1:]...)
	if out := s.send(&protocol.GpadlTeardown{ChannelID: g.channel, GpadlID: g.id}); out != "" {
		return out
	}
	m, out := s.await(func(m protocol.Message) bool {
		t, ok := m.(*protocol.GpadlTorndown)
		return ok && t.GpadlID == g.id
	}, 100*time.Millisecond)
	if m == nil {
		if out == outNoAnswer {
			return "teardown pending (in use)"
		}
		return out
	}
	return outTorndown
}

// Opens.

func (s *session) openBadOffset() string {
	outPages, inPages := 2, 2
	offsets := []uint32{0xFFFFFFFF, 4, 5, 1 << 20}
	off := offsets[s.rng.IntN(len(offsets))]
	ch, out := s.closedChannel()
	if out != "" {
		return out
	}
	_, out = s.openChannel(ch, openSpec{outPages: outPages, inPages: inPages, offset: off})
	return out
}

// closedChannel picks an offered channel that is not open, closing one
// if all are, so that a bad open meets the check it is meant for rather
// than "already open".
func (s *session) closedChannel() (uint32, string) {
	var closed []uint32
	for _, o := range s.offers {
		if s.open[o.ChannelID] == nil {
			closed = append(closed, o.ChannelID)
		}
	}
	if len(closed) > 0 {
		return closed[s.rng.IntN(len(closed))], ""
	}
	if len(s.open) == 0 {
		return 0, "no channel offered"
	}
	id := sortedKeys(s.open)[0]
	if out := s.closeOpen(); out != outTorndown {
		return 0, "closing one first: " + out
	}
	return id, ""
}

func (s *session) openForeignGpadl() string {
	if len(s.offers) < 2 {
		return "fewer than two channels offered"
	}
	b, out := s.closedChannel()
	if out != "" {
		return out
	}
	a := b
	for a == b {
		a = s.offers[s.rng.IntN(len(s.offers))].ChannelID
	}
	// A ring GPADL of a, formatted, used to open b.
	pfn := s.pages(4)
	region := s.mem.Bytes()[pfn*guestmem.PageSize : (pfn+4)*guestmem.PageSize]
	ring.Format(region[:2*guestmem.PageSize], true) //nolint:errcheck
	ring.Format(region[2*guestmem.PageSize:], true) //nolint:errcheck
	id := s.gpadlID()
	st, ok, out := s.createGpadl(a, id, []gpa.Range{pageRange(pfn, 4)})
	if !ok {
		return out
	}
	if st != 0 {
		return "ring " + gpadlOutcome(st)
	}
	s.gpadls = append(s.gpadls, gpadlRef{a, id})
	_, out = s.openChannel(b, openSpec{outPages: 2, inPages: 2, gpadl: id})
	return out
}

func (s *session) openCorruptRing() string {
	ch, out := s.closedChannel()
	if out != "" {
		return out
	}
	_, out = s.openChannel(ch, openSpec{corruptRings: true})
	return out
}

func (s *session) openNoEvents() string {
	ch, out := s.closedChannel()
	if out != "" {
		return out
	}
	_, out = s.openChannel(ch, openSpec{noEvents: true})
	return out
}

func (s *session) openTwice() string {
	ch := s.channel()
	if s.open[ch] == nil {
		if r, out := s.openChannel(ch, openSpec{}); r == nil {
			return "first open: " + out
		}
	}
	_, out := s.openChannel(ch, openSpec{})
	return out
}

func (s *session) openValid() string {
	ch := s.channel()
	if s.open[ch] != nil {
		return s.closeOpen()
	}
	_, out := s.openChannel(ch, openSpec{})
	return out
}

// closeOpen closes the open channel of the lowest id as a guest should.
func (s *session) closeOpen() string {
	ids := sortedKeys(s.open)
	if len(ids) == 0 {
		return "nothing open"
	}
	id := ids[0]
	r := s.open[id]
	delete(s.open, id)
	r.closeEvents()
	if out := s.send(&protocol.CloseChannel{ChannelID: id}); out != "" {
		return out
	}
	if out := s.send(&protocol.GpadlTeardown{ChannelID: id, GpadlID: r.gpadl}); out != "" {
		return out
	}
	m, out := s.await(func(m protocol.Message) bool {
		t, ok := m.(*protocol.GpadlTorndown)
		return ok && t.GpadlID == r.gpadl
	}, answerWait)
	if m == nil {
		return out
	}
	return outTorndown
}

// Rings.

func dataSize(region []byte) uint32 { return uint32(len(region) - ring.ControlSize) }

func put32(b []byte, off int, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }

// afterRing signals the host and reports how the connection fared.
func (s *session) afterRing(r *rings) string {
	r.toHost.Signal() //nolint:errcheck // the host may be gone; the check below says so
	return s.keptOrGone()
}

// keptOrGone waits a moment and says whether the host kept the
// connection (and whether it rescinded the channel meanwhile).
func (s *session) keptOrGone() string {
	m, out := s.await(func(m protocol.Message) bool { _, ok := m.(*protocol.RescindChannelOffer); return ok }, quietWait)
	switch {
	case m != nil:
		s.observe(m)
		return outRescinded
	case out == outNoAnswer:
		return outKept
	}
	return out
}

func (s *session) ringWriteIndexGarbage() string {
	r, out := s.anyOpen()
	if r == nil {
		return out
	}
	put32(r.out, ring.WriteIndexOffset, s.rng.Uint32())
	return s.afterRing(r)
}

func (s *session) ringWriteIndexPastEnd() string {
	r, out := s.anyOpen()
	if r == nil {
		return out
	}
	size := dataSize(r.out)
	v := size + 8*uint32(s.rng.IntN(64))
	if s.rng.IntN(3) == 0 {
		v = 8*uint32(s.rng.IntN(int(size/8))) + 1 + uint32(s.rng.IntN(7)) // unaligned
	}
	put32(r.out, ring.WriteIndexOffset, v)
	return s.afterRing(r)
}

// ringBadDescriptor writes one packet whose descriptor breaks a rule at
// the ring's write index, and publishes it.
func (s *session) ringBadDescriptor() string {
	r, out := s.anyOpen()
	if r == nil {
		return out
	}
	size := dataSize(r.out)
	w := binary.LittleEndian.Uint32(r.out[ring.WriteIndexOffset:])
	if w >= size || w%8 != 0 {
		w = 0
		put32(r.out, ring.ReadIndexOffset, 0)
	}
	typ, dataOff, length, flags := uint16(ring.TypeInBand), uint16(2), uint16(4), uint16(0)
	switch s.rng.IntN(7) {
	case 0:
		typ = uint16(s.rng.IntN(0x10000)) // unknown type
	case 1:
		dataOff = uint16(5 + s.rng.IntN(1000)) // data past the packet
	case 2:
		dataOff = 0 // header inside the descriptor
	case 3:
		length = uint16(size/8 + uint32(s.rng.IntN(100))) // longer than the ring
	case 4:
		flags = uint16(2 + s.rng.IntN(0xFFFE)) // unknown flags
	case 5:
		typ = uint16(ring.TypeGPADirect) // a GPA-direct header with garbage ranges
		length = 8
	default:
		length = 0
	}
	var pkt [64]byte
	s.scribble(pkt[:])
	binary.LittleEndian.PutUint16(pkt[0:], typ)
	binary.LittleEndian.PutUint16(pkt[2:], dataOff)
	binary.LittleEndian.PutUint16(pkt[4:], length)
	binary.LittleEndian.PutUint16(pkt[6:], flags)
	data := r.out[ring.ControlSize:]
	for i := range 40 {
		data[(w+uint32(i))%size] = pkt[i]
	}
	put32(r.out, ring.WriteIndexOffset, (w+40)%size)
	return s.afterRing(r)
}

// ringReadIndexGarbage lies about how far the guest read the host's
// ring: the host's writer reads this index to find room.
func (s *session) ringReadIndexGarbage() string {
	r, out := s.anyOpen()
	if r == nil {
		return out
	}
	v := s.rng.Uint32()
	if s.rng.IntN(2) == 0 {
		v = dataSize(r.in) + uint32(s.rng.IntN(4096))
	}
	put32(r.in, ring.ReadIndexOffset, v)
	// Send a request so the host has something to write.
	if w, err := ring.NewWriter(r.out); err == nil {
		w.WriteInBand(1, ring.FlagCompletionRequested, make([]byte, 16)) //nolint:errcheck // a full ring is fine
		w.Commit()
	}
	return s.afterRing(r)
}

func (s *session) ringControlGarbage() string {
	r, out := s.anyOpen()
	if r == nil {
		return out
	}
	region := r.in
	if s.rng.IntN(2) == 0 {
		region = r.out
	}
	switch s.rng.IntN(3) {
	case 0:
		put32(region, ring.PendingSendSizeOffset, s.rng.Uint32())
	case 1:
		put32(region, ring.InterruptMaskOffset, s.rng.Uint32())
	default:
		put32(region, ring.FeatureBitsOffset, s.rng.Uint32())
	}
	return s.afterRing(r)
}

// ringRewriteWhileRead publishes a well-formed packet, then keeps
// rewriting its descriptor and the write index for a few milliseconds,
// signalling, while the host reads.
func (s *session) ringRewriteWhileRead() string {
	r, out := s.anyOpen()
	if r == nil {
		return out
	}
	w, err := ring.NewWriter(r.out)
	if err != nil {
		// Already corrupt: rewrite whatever is there.
		put32(r.out, ring.WriteIndexOffset, 0)
		put32(r.out, ring.ReadIndexOffset, 0)
	} else {
		w.WriteInBand(7, ring.FlagCompletionRequested, make([]byte, 32)) //nolint:errcheck
		w.Commit()
	}
	data := r.out[ring.ControlSize:]
	end := time.Now().Add(time.Duration(2+s.rng.IntN(6)) * time.Millisecond)
	for i := 0; time.Now().Before(end); i++ {
		off := s.rng.IntN(min(len(data), 256))
		data[off] = byte(s.rng.Uint32())
		if i%8 == 0 {
			put32(r.out, ring.WriteIndexOffset, 8*uint32(s.rng.IntN(64)))
			r.toHost.Signal() //nolint:errcheck
			time.Sleep(200 * time.Microsecond)
		}
	}
	return s.afterRing(r)
}

// ringFillNeverDrain sends well-formed requests until the guest→host ring
// is full and never reads the answers.
func (s *session) ringFillNeverDrain() string {
	r, out := s.anyOpen()
	if r == nil {
		return out
	}
	w, err := ring.NewWriter(r.out)
	if err != nil {
		return "ring corrupt already"
	}
	sent := 0
	for round := 0; round < 50; round++ {
		n := 0
		for ; n < 64; n++ {
			if err := w.WriteInBand(uint64(sent+n), ring.FlagCompletionRequested, make([]byte, 16+8*s.rng.IntN(8))); err != nil {
				break
			}
		}
		sent += n
		w.Commit()
		r.toHost.Signal() //nolint:errcheck
		if n < 64 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if out := s.keptOrGone(); out != outKept {
		return out
	}
	return fmt.Sprintf("%s, %s requests in", outKept, bucket(sent))
}

// bucket rounds n down to a power of two, so that reports group.
func bucket(n int) string {
	if n == 0 {
		return "0"
	}
	b := 1
	for b*2 <= n {
		b *= 2
	}
	return fmt.Sprintf("%d+", b)
}

// signalFlood signals the host's event over and over, in bursts with
// breaks.
func (s *session) signalFlood() string {
	r, out := s.anyOpen()
	if r == nil {
		return out
	}
	bursts := 10 + s.rng.IntN(40)
	for range bursts {
		for range floodBurst {
			if err := r.toHost.Signal(); err != nil {
				return "signal failed"
			}
		}
		time.Sleep(floodGap)
	}
	return s.keptOrGone()
}

// eventBlockingPinned turns both of a channel's eventfds to blocking mode
// (the open file, and with it O_NONBLOCK, is shared with the host) and
// pins the count of the host's event to the guest at its limit, so that
// the host's next signal cannot be written. Then it sends a request whose
// answer the host signals, and reports whether that signal got through
// (the host reads the pinned count away: the count becomes its 1).
func (s *session) eventBlockingPinned() string {
	r, out := s.anyOpen()
	if r == nil {
		return out
	}
	toHost, err1 := r.toHost.Descriptor()
	fromHost, err2 := r.fromHost.Descriptor()
	if err1 != nil || err2 != nil {
		return "event closed"
	}
	setMode := func(nonblock bool) bool {
		for _, fd := range []int{toHost, fromHost} {
			if unix.SetNonblock(fd, nonblock) != nil {
				return false
			}
		}
		return true
	}
	// The pin is written in non-blocking mode (this action may have left
	// the files blocking before): the host may signal between the read
	// and the write, and a blocking write would then wait for good.
	if !setMode(true) {
		return "cannot change the mode"
	}
	var limit [8]byte
	binary.LittleEndian.PutUint64(limit[:], 1<<64-2)
	pinned := false
	for range 10 {
		var b [8]byte
		unix.Read(fromHost, b[:]) //nolint:errcheck // empty is fine
		if _, err := unix.Write(fromHost, limit[:]); err == nil {
			pinned = true
			break
		}
	}
	if !pinned {
		return "could not pin the count"
	}
	if !setMode(false) {
		return "cannot change the mode"
	}
	// Everything the host wrote so far counts as read and interrupts are
	// on (another action may have scribbled on the control page), so
	// that the host's answer finds its ring empty and is signalled.
	w0 := binary.LittleEndian.Uint32(r.in[ring.WriteIndexOffset:])
	put32(r.in, ring.ReadIndexOffset, w0)
	put32(r.in, ring.InterruptMaskOffset, 0)
	if w, err := ring.NewWriter(r.out); err == nil {
		w.WriteInBand(7, ring.FlagCompletionRequested, make([]byte, 32)) //nolint:errcheck // a full ring answers nothing
		w.Commit()
	}
	r.toHost.Signal() //nolint:errcheck // the host may be gone; keptOrGone says so
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if binary.LittleEndian.Uint32(r.in[ring.WriteIndexOffset:]) == w0 {
			continue // not answered (yet)
		}
		// Writable means the count is below its limit again: the host
		// read it away and wrote its signal. (A read would block in
		// blocking mode on a count of 0, so look before reading.)
		pfd := []unix.PollFd{{Fd: int32(fromHost), Events: unix.POLLIN | unix.POLLOUT}}
		if n, err := unix.Poll(pfd, 0); err == nil && n == 1 && pfd[0].Revents&unix.POLLOUT != 0 {
			if pfd[0].Revents&unix.POLLIN != 0 {
				b := [][]byte{make([]byte, 8)}
				unix.Preadv2(fromHost, b, -1, unix.RWF_NOWAIT) //nolint:errcheck // a read that cannot block: the count may be gone by now
			}
			if out := s.keptOrGone(); out != outKept {
				return out
			}
			return "host's signal got through"
		}
	}
	if binary.LittleEndian.Uint32(r.in[ring.WriteIndexOffset:]) == w0 {
		return s.keptOrGone()
	}
	return "host's signal stuck"
}

// stopReading stops reading the control socket for a while, making the
// host answer many requests meanwhile (GPADLs outside memory: each gets
// a GpadlCreated it cannot deliver while the socket is full).
func (s *session) stopReading() string {
	s.gate.Lock()
	hold := time.Duration(500+s.rng.IntN(2500)) * time.Millisecond
	end := time.Now().Add(hold)
	sent, notSent := 0, false
	ch := s.channel()
	for time.Now().Before(end) && sent < 2000 {
		msgs, err := protocol.NewGpadlMessages(ch, s.gpadlID(), []gpa.Range{pageRange(s.mem.Pages()+1, 1)})
		if err != nil {
			break
		}
		err = s.c.Send(protocol.Marshal(msgs[0]))
		if err != nil {
			notSent = true
			break
		}
		sent++
		if sent%64 == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	sleep(s.ctx, time.Until(end))
	s.gate.Unlock()
	// Drain what the host managed to send, and see whether it is still
	// there.
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		select {
		case <-s.msgs:
			continue
		case <-s.done:
			return fmt.Sprintf("%s after %s unread", outDisconnected, hold.Round(500*time.Millisecond))
		case <-time.After(100 * time.Millisecond):
		}
		break
	}
	if s.gone() {
		return fmt.Sprintf("%s after %s unread", outDisconnected, hold.Round(500*time.Millisecond))
	}
	if notSent {
		return outKept + ", host stopped reading meanwhile"
	}
	return outKept
}
