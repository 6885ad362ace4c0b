package channel

import "github.com/govmbus/govmbus/guestmem"

// Access is what a VSP may do with the guest memory it is handed: the
// pages of a GPA-direct packet (Packet.ExternalData) or of a GPADL
// (MapGpadl). It is guestmem's type under this package's name, so that a
// device is written against the channel API alone.
type Access = guestmem.Access

// The accesses a VSP asks for.
const (
	// AccessReadWrite lets the view write the guest's pages, as a device
	// that answers a read request into guest memory must.
	AccessReadWrite = guestmem.ReadWrite
	// AccessReadOnly refuses writes through the view: a device that only
	// takes data from the guest cannot scribble on it by mistake, and a
	// GPADL the guest shared read-only allows no more.
	AccessReadOnly = guestmem.ReadOnly
)
