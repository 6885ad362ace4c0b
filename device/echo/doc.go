// Package echo is the simplest VSP: every in-band packet a guest sends on
// the channel comes back on the host→guest ring, as a completion with the
// same transaction id and payload when the guest asked for one, else as an
// in-band packet. It is a host.Device, one goroutine per open channel,
// and exists to prove the whole path (control plane, GPADL, rings, events)
// and to measure it.
//
// Its offer uses InterfaceType, a fixed GUID chosen at random for govmbus,
// and InterfaceInstance by default.
package echo
