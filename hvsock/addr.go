package hvsock

import (
	"crypto/rand"
	"encoding/binary"

	"github.com/govmbus/govmbus/protocol"
)

// Network is the name Addr.Network returns.
const Network = "hvsock"

// Well-known VM ids of Windows' Hyper-V socket addresses (hvsocket.h).
// They never travel on VMBus: a connection's VM is the guest it runs on
// (host side) or the host (guest side).
var (
	// VMIDWildcard: any VM; a listener's local address.
	VMIDWildcard = protocol.GUID{}
	// VMIDParent: the host, as a guest names it.
	VMIDParent = protocol.MustParseGUID("a42e7cda-d03f-480c-9cc2-a4de20abb878")
)

// Addr is a Hyper-V socket address: a VM and a service in it.
type Addr struct {
	VMID      protocol.GUID
	ServiceID protocol.GUID
}

// Network is "hvsock".
func (Addr) Network() string { return Network }

// String is "VMID:SERVICE", both GUIDs in their usual form.
func (a Addr) String() string { return a.VMID.String() + ":" + a.ServiceID.String() }

// GuestVMID is the VM id this package gives the guest of host connection
// id (host.Guest.ID): its number big-endian in the last eight bytes, so
// that addresses of different guests differ.
func GuestVMID(id uint64) protocol.GUID {
	var g protocol.GUID
	binary.BigEndian.PutUint64(g[8:], id)
	return g
}

// portTemplate is bytes 4–15 of a service id that is an AF_VSOCK port
// (DEVICES.md §2.2): <port>-facb-11e6-bd58-64006a7986d3.
var portTemplate = protocol.MustParseGUID("00000000-facb-11e6-bd58-64006a7986d3")

// ServiceForPort is the service id Linux uses for AF_VSOCK port port: the
// port in data1, the template after it.
func ServiceForPort(port uint32) protocol.GUID {
	g := portTemplate
	binary.LittleEndian.PutUint32(g[:4], port)
	return g
}

// PortOf is the AF_VSOCK port of a template-shaped service id; ok is
// false for any other GUID.
func PortOf(service protocol.GUID) (port uint32, ok bool) {
	if [12]byte(service[4:]) != [12]byte(portTemplate[4:]) {
		return 0, false
	}
	return binary.LittleEndian.Uint32(service[:4]), true
}

// ephemeralEndpoint is a fresh endpoint id: a template-shaped id with a
// random port above 1023, as Linux picks its local ports.
func ephemeralEndpoint() protocol.GUID {
	var b [4]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand.Read does not fail
	port := 1024 + binary.LittleEndian.Uint32(b[:])%(1<<31-1024)
	return ServiceForPort(port)
}
