package host

import (
	"github.com/govmbus/govmbus/protocol"
)

// gpadlHeader starts a GPADL. Problems the guest can be told about (unknown
// channel, bad counts, limits) get GpadlCreated with a failure status, so a
// guest waiting for the answer is not left hanging.
func (gc *guestConn) gpadlHeader(m *protocol.GpadlHeader) error {
	if _, ok := gc.channelIndex(m.ChannelID); !ok {
		gc.log.Warn("GPADL refused", "channel", m.ChannelID, "gpadl", m.GpadlID, "err", "no such channel")
		gc.send(&protocol.GpadlCreated{ChannelID: m.ChannelID, GpadlID: m.GpadlID, Status: statusInvalidParameter})
		return nil
	}
	status, done, err := gc.gpadls.header(m)
	if done {
		gc.gpadlDone(m.ChannelID, m.GpadlID, status, err)
	}
	return nil
}

func (gc *guestConn) gpadlBody(m *protocol.GpadlBody) error {
	ch, status, known, done, err := gc.gpadls.body(m)
	if !known {
		return gc.drop(protocol.TypeGpadlBody, "no GPADL being created with this id", "gpadl", m.GpadlID)
	}
	if done {
		gc.gpadlDone(ch, m.GpadlID, status, err)
	}
	return nil
}

func (gc *guestConn) gpadlDone(channelID, id, status uint32, err error) {
	if status == statusSuccess {
		gc.log.Debug("GPADL created", "channel", channelID, "gpadl", id)
	} else {
		gc.log.Warn("GPADL refused", "channel", channelID, "gpadl", id, "status", status, "err", err)
	}
	gc.send(&protocol.GpadlCreated{ChannelID: channelID, GpadlID: id, Status: status})
}

// gpadlTeardown answers at once unless the GPADL is in use; then GpadlTorndown
// follows when the last user lets go (gpadlSet.release).
func (gc *guestConn) gpadlTeardown(m *protocol.GpadlTeardown) error {
	found, now := gc.gpadls.teardown(m.ChannelID, m.GpadlID)
	if !found {
		return gc.drop(protocol.TypeGpadlTeardown, "no such GPADL on this channel", "channel", m.ChannelID, "gpadl", m.GpadlID)
	}
	if now {
		gc.log.Debug("GPADL torn down", "channel", m.ChannelID, "gpadl", m.GpadlID)
		gc.send(&protocol.GpadlTorndown{GpadlID: m.GpadlID})
	} else {
		gc.log.Debug("GPADL teardown waits for its users", "channel", m.ChannelID, "gpadl", m.GpadlID)
	}
	return nil
}
