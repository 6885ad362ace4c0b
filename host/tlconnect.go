package host

import (
	"errors"
	"time"

	"github.com/govmbus/govmbus/protocol"
)

// errNoConnectHandler refuses a TlConnectRequest when nothing above the
// host takes connections (Config.OnConnect nil).
var errNoConnectHandler = errors.New("host: no connection handler")

// tlKey names one connection a guest asked for: its endpoint and the
// service, which the answering offer carries as instance and type.
type tlKey struct {
	endpoint, service protocol.GUID
}

// tlConnect takes a TlConnectRequest. The request's version was checked
// by handle (4.0 and later). What the host does not refuse here waits in
// gc.connects, bounded by Limits.MaxPendingConnects, until the channel
// answering it is opened or removed, or Limits.ConnectTimeout passes;
// OnConnect is called once handle returns (run). Must hold mu.
func (gc *guestConn) tlConnect(m *protocol.TLConnectRequest) error {
	if m.HasSiloID && gc.version < protocol.VersionWin10RS5 {
		// The 56-byte form is 5.2's; before it a request has 40 bytes.
		return gc.drop(protocol.TypeTLConnectRequest, "silo id before 5.2", "version", gc.version)
	}
	k := tlKey{m.EndpointID, m.ServiceID}
	now := time.Now()
	gc.expireConnectsLocked(now)
	switch {
	case gc.h.onConn == nil:
		gc.refuseLocked(*m, errNoConnectHandler)
	case gc.shuttingDown || !gc.offersSent:
		// The answer would be an offer, which needs RequestOffers
		// first and is pointless during a shutdown.
		gc.refuseLocked(*m, errors.New("offers not requested, or shutting down"))
	case gc.connects[k] != (time.Time{}):
		gc.refuseLocked(*m, errors.New("a connect of this endpoint to this service is pending"))
	case len(gc.connects) >= gc.h.limits.MaxPendingConnects:
		gc.refuseLocked(*m, errors.New("too many pending connects"))
	default:
		if gc.connects == nil {
			gc.connects = make(map[tlKey]time.Time)
		}
		gc.connects[k] = now
		gc.dueConnect = append(gc.dueConnect, *m)
	}
	return nil
}

// expireConnectsLocked forgets connects older than Limits.ConnectTimeout.
// Must hold mu.
func (gc *guestConn) expireConnectsLocked(now time.Time) {
	for k, t := range gc.connects {
		if now.Sub(t) >= gc.h.limits.ConnectTimeout {
			delete(gc.connects, k)
		}
	}
}

// connectDoneLocked ends the pending connect an offer of spec answers,
// if any: it was opened or removed. Must hold mu.
func (gc *guestConn) connectDoneLocked(spec *OfferSpec) {
	if len(gc.connects) == 0 || spec.Flags&protocol.OfferFlagTLNPIProvider == 0 {
		return
	}
	delete(gc.connects, tlKey{spec.InterfaceInstance, spec.InterfaceType})
}

// refuseLocked answers a connect the host does not make: a
// TlConnectRequestResult from 4.1, nothing before (DEVICES.md §2.3).
// Must hold mu.
func (gc *guestConn) refuseLocked(m protocol.TLConnectRequest, why error) {
	gc.log.Debug("connect refused", "service", m.ServiceID, "endpoint", m.EndpointID, "why", why)
	if gc.version < protocol.TypeTLConnectRequestResult.MinVersion() {
		return
	}
	gc.send(&protocol.TLConnectRequestResult{EndpointID: m.EndpointID, ServiceID: m.ServiceID, Status: protocol.StatusConnectionRefused})
}

// runConnects calls OnConnect for the requests handle queued, outside mu,
// and refuses those it returns an error for. run's goroutine only.
func (gc *guestConn) runConnects() {
	gc.mu.Lock()
	due := gc.dueConnect
	gc.dueConnect = nil
	gc.mu.Unlock()
	for _, m := range due {
		err := gc.h.onConn(gc.guest, m)
		if err == nil {
			continue
		}
		gc.mu.Lock()
		delete(gc.connects, tlKey{m.EndpointID, m.ServiceID})
		gc.refuseLocked(m, err)
		gc.mu.Unlock()
	}
}
