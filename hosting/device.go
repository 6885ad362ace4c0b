package hosting

import "github.com/govmbus/govmbus/channel"

// Device is one device server on one guest: the servicing surface a VSP
// gives the daemon. A device implements it without importing this
// package (device/echo's and device/blk's servers do); the daemon drives
// it in this order for a servicing:
//
//	StopIndications  every device, at once: no packet is indicated any more
//	Pause            each device's packets indicated so far are completed
//	Save             the paused channel's state in whole-record chunks
//	(the successor)  Kind.Restore, then StartHeld on every device,
//	                 then Release on every device: packets flow
//
// A servicing that fails before its hand-over resumes the old devices with
// Start. Close ends the device when its guest leaves or the daemon
// shuts down.
type Device interface {
	// Channel is the device's server channel: the daemon reads its
	// statistics, sets how its Pause treats restartable packets for a
	// successor that cannot restore them, and ends its receive goroutine
	// before a spawned successor takes it over.
	Channel() *channel.Channel
	// StopIndications stops the device's packets at once without
	// waiting; Pause or Start follows.
	StopIndications()
	// Pause returns once every packet indicated so far is completed,
	// or saved as restartable.
	Pause() error
	// Save returns the paused channel's state as whole-record chunks,
	// which Kind.Restore takes in the successor.
	Save() ([][]byte, error)
	// Start lets packets flow again after Pause (or after a restore
	// that left the device paused).
	Start() error
	// StartHeld starts a restored device without letting its packets
	// flow yet; Release lets them. The daemon starts every device held
	// and then releases them all, so that the first devices' traffic
	// does not slow the start of the rest.
	StartHeld() error
	// Release lets the packets of a device started held flow.
	Release()
	// Close ends the device; it is idempotent.
	Close() error
}
