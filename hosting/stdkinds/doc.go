// Package stdkinds registers govmbus's own devices (device/echo,
// device/blk and the integration components of device/ic) as kinds of a hosting daemon: the layer between the devices,
// which know nothing of the daemon, and the command line, which knows
// nothing of the devices. A device of our own is added here, in a file of
// its own; a VMM author registers theirs the same way on their registry.
package stdkinds

import "github.com/govmbus/govmbus/hosting"

// Register adds echo, blk, blk-ro, heartbeat, shutdown, timesync, kvp and
// ic to r, in that order (the order hosting.Registry.Usage lists them in).
func Register(r *hosting.Registry) {
	r.Register(Echo)
	r.Register(Blk)
	r.Register(BlkReadOnly)
	r.Register(Heartbeat)
	r.Register(Shutdown)
	r.Register(TimeSync)
	r.Register(KVP)
	r.Register(IC)
}

// Registry is a new registry holding the kinds of Register.
func Registry() *hosting.Registry {
	r := hosting.NewRegistry()
	Register(r)
	return r
}

// device makes a constructor's result a hosting.Device, nil on error
// (not an interface holding a nil pointer).
func device[T hosting.Device](d T, err error) (hosting.Device, error) {
	if err != nil {
		return nil, err
	}
	return d, nil
}
