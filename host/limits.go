package host

import "time"

// Limits bound what guests can make the host hold. A zero field takes the
// default named beside it.
type Limits struct {
	// MaxGuests is how many guest connections Serve keeps at once; a
	// guest beyond it is disconnected at once. Default 64.
	MaxGuests int
	// MaxGpadls is how many GPADLs one guest may have, created or still
	// arriving (header received, bodies missing); a GpadlHeader beyond it
	// gets a failure status. Default 1024.
	MaxGpadls int
	// MaxGpadlPages is how many pages one guest's created GPADLs may name
	// in all; a GPADL that would pass it gets a failure status. Default
	// 262144 (1 GiB of 4 KiB pages).
	MaxGpadlPages uint64
	// MaxBadMessages is how many messages one guest may send that the host
	// drops (undecodable, out of order, not allowed in the negotiated
	// version) before it is disconnected. Default 256.
	MaxBadMessages int
	// SendTimeout bounds how long the host waits for room in a guest's
	// control socket when it sends the guest a message. A guest that
	// has not read for that long while the host has something to say is
	// disconnected: the host never waits on a guest for longer, and
	// nothing the host holds (that guest's state, a device goroutine
	// completing a GPADL teardown) is held up for longer either.
	// Default 2 s.
	SendTimeout time.Duration
	// ReleaseTimeout bounds how long the host waits for a guest's
	// RelIdReleased after it rescinded a channel (Offered.Rescind,
	// Shutdown): a guest that has not released the id by then is
	// disconnected, which ends every wait for it. Default 10 s.
	ReleaseTimeout time.Duration
	// ContactTimeout bounds how long a new connection may hold a guest
	// slot (MaxGuests) before it negotiates a version: one that has not
	// sent an accepted InitiateContact by then is disconnected. Default
	// 10 s.
	ContactTimeout time.Duration
	// MaxPendingConnects is how many TlConnectRequests of one guest may
	// wait at once for their channel to be opened (Config.OnConnect); a
	// request beyond it is refused as if nothing listened. Default 32.
	MaxPendingConnects int
	// ConnectTimeout is how long a TlConnectRequest counts as pending
	// when the channel answering it is not opened: after it the request
	// no longer takes a place in MaxPendingConnects. Default 5 s, the
	// time OpenVMM gives a guest to open an hvsock channel.
	ConnectTimeout time.Duration
}

// Default limits.
const (
	DefaultMaxGuests          = 64
	DefaultMaxGpadls          = 1024
	DefaultMaxGpadlPages      = 1 << 18
	DefaultMaxBadMessages     = 256
	DefaultSendTimeout        = 2 * time.Second
	DefaultReleaseTimeout     = 10 * time.Second
	DefaultContactTimeout     = 10 * time.Second
	DefaultMaxPendingConnects = 32
	DefaultConnectTimeout     = 5 * time.Second
)

func (l Limits) withDefaults() Limits {
	if l.MaxGuests <= 0 {
		l.MaxGuests = DefaultMaxGuests
	}
	if l.MaxGpadls <= 0 {
		l.MaxGpadls = DefaultMaxGpadls
	}
	if l.MaxGpadlPages == 0 {
		l.MaxGpadlPages = DefaultMaxGpadlPages
	}
	if l.MaxBadMessages <= 0 {
		l.MaxBadMessages = DefaultMaxBadMessages
	}
	if l.SendTimeout <= 0 {
		l.SendTimeout = DefaultSendTimeout
	}
	if l.ReleaseTimeout <= 0 {
		l.ReleaseTimeout = DefaultReleaseTimeout
	}
	if l.ContactTimeout <= 0 {
		l.ContactTimeout = DefaultContactTimeout
	}
	if l.MaxPendingConnects <= 0 {
		l.MaxPendingConnects = DefaultMaxPendingConnects
	}
	if l.ConnectTimeout <= 0 {
		l.ConnectTimeout = DefaultConnectTimeout
	}
	return l
}
