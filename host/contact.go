package host

import (
	"github.com/govmbus/govmbus/protocol"
)

// initiateContact answers a version request: every version in the table is
// accepted as asked (exact match only, as Hyper-V does); anything else gets
// "not supported", and the guest may try the next of its list.
func (gc *guestConn) initiateContact(m *protocol.InitiateContact) error {
	if gc.contacted {
		return gc.drop(protocol.TypeInitiateContact, "already connected", "version", gc.version)
	}
	v := m.VersionRequested
	if !v.Known() {
		gc.send(&protocol.VersionResponse{VersionSupported: false, ConnectionState: protocol.ConnectionSuccessful})
		gc.log.Info("version refused", "version", v)
		return nil
	}
	if gc.mem == nil {
		// The guest sends its memory before InitiateContact; a guest
		// without memory can still enumerate offers, but every GPADL
		// fails.
		if mem, err := gc.c.TakeMemory(); err == nil {
			gc.mem = mem
			gc.gpadls.mu.Lock()
			gc.gpadls.mem = mem
			gc.gpadls.mu.Unlock()
		}
	}
	resp := &protocol.VersionResponse{VersionSupported: true, ConnectionState: protocol.ConnectionSuccessful}
	if v >= protocol.VersionWin10RS31 {
		resp.VersionOrConnectionID = MessageConnectionID
	}
	var features protocol.FeatureFlags
	if v >= protocol.VersionCopper {
		features = m.Features & SupportedFeatures
		resp.HasFeatures = true
		resp.SupportedFeatures = SupportedFeatures
	}
	gc.contacted, gc.version, gc.features = true, v, features
	gc.send(resp)
	if !gc.greeted && gc.h.onGuest != nil {
		gc.greeted, gc.greet = true, true
	}
	var memBytes uint64
	if gc.mem != nil {
		memBytes = gc.mem.Size()
	}
	gc.log.Info("version negotiated", "version", v, "features", features, "memory", memBytes)
	return nil
}
