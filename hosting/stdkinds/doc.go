// Package stdkinds registers govmbus's own devices (device/echo and
// device/blk) as kinds of a hosting daemon: the layer between the devices,
// which know nothing of the daemon, and the command line, which knows
// nothing of the devices. A device of our own is added here, in a file of
// its own; a VMM author registers theirs the same way on their registry.
package stdkinds

import "github.com/govmbus/govmbus/hosting"

// Register adds echo, blk and blk-ro to r, in that order (the order
// hosting.Registry.Usage lists them in).
func Register(r *hosting.Registry) {
	r.Register(Echo)
	r.Register(Blk)
	r.Register(BlkReadOnly)
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
