package channel

import (
	"github.com/govmbus/govmbus/savedstate"
)

// SaveStateFunc returns the VSP's own state of the channel, the part that
// belongs to no packet (a protocol's negotiated version, a sequence
// number, a request the peer has yet to answer), to be saved with the
// channel. It runs during SaveBegin, on the caller's goroutine, while the
// channel is paused. nil or empty bytes save nothing.
type SaveStateFunc func(c *Channel) ([]byte, error)

// RestoreStateFunc takes back, during RestoreFromBuffer, what
// SaveStateFunc returned. It runs once the whole state has checked and
// before anything of the channel changes: its error fails the restore
// and leaves the channel as it was. It runs before the restore-packet
// callbacks; should one of those fail, the restore fails, and the VSP
// drops the state this call took. dev is hostile input like the rest of
// the state and valid only during the call.
type RestoreStateFunc func(c *Channel, dev []byte) error

// maxDeviceState bounds the VSP's bytes of a channel state: one record.
const maxDeviceState = savedstate.MaxBody - 64

// SetSaveStateCallbacks sets the callbacks that save and restore the
// VSP's own state of a server channel, a govmbus extension of KMCL
// (whose VSPs save what is theirs beside the channel, in their own device
// state): here it travels in the channel's state, as one record
// (KindChannelDevice), so that a servicing host hands every device's
// state over as its channels' states. Server channels, while disabled.
// Without a restore callback a state holding VSP bytes is refused by
// RestoreFromBuffer (StatusInvalidDeviceState).
func (v ServicingView) SetSaveStateCallbacks(save SaveStateFunc, restore RestoreStateFunc) error {
	c := v.c
	return c.setter("save/restore state callbacks", func() error {
		if err := c.serverOnly("save/restore state callbacks"); err != nil {
			return err
		}
		c.cfg.saveState, c.cfg.restoreState = save, restore
		return nil
	})
}

// SavesDeviceState reports whether the channel has a save-state callback
// (SetSaveStateCallbacks): its saved state may then hold a channel-device
// record, which a servicing host's successor must be able to read.
func (v ServicingView) SavesDeviceState() bool {
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	return v.c.cfg.saveState != nil
}

// deviceRecord asks the VSP for its state: nil when it has none.
func (c *Channel) deviceRecord() (*savedstate.Record, error) {
	fn := c.cfg.saveState
	if fn == nil {
		return nil, nil
	}
	dev, err := fn(c)
	if err != nil {
		return nil, err
	}
	if len(dev) == 0 {
		return nil, nil
	}
	if len(dev) > maxDeviceState {
		return nil, fail(StatusInvalidBufferSize, "save-state callback returned %d bytes, at most %d", len(dev), maxDeviceState)
	}
	var e savedstate.Encoder
	e.Bytes(dev)
	return &savedstate.Record{Kind: KindChannelDevice, Flags: savedstate.FlagCritical, Body: e.Body()}, nil
}

// deviceJSON is how inspect shows a device record.
type deviceJSON struct {
	Bytes int    `json:"bytes"`
	Hex   string `json:"hex"`
}

func decodeDevice(b []byte) ([]byte, error) {
	d := savedstate.NewDecoder(b)
	dev := d.Bytes(maxDeviceState)
	if err := d.Err(); err != nil {
		return nil, err
	}
	if len(dev) == 0 {
		return nil, invalidf("an empty device record")
	}
	return dev, nil
}
