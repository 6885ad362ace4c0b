// Package capture records VMBus traffic to a pcapng file and reads it
// back: the control messages a host exchanges with each guest, the ring
// packets its server channels write and read, their signals, and the
// servicing events between them. It stands on protocol alone (for the
// names of message types), so that host and channel, which feed it, can
// import it.
//
// # File
//
// A capture is a pcapng file (IETF draft-ietf-opsawg-pcapng): a Section
// Header Block, then one Interface Description Block per guest (named
// "guest N", if_tsresol 9: nanosecond timestamps) and one for the host
// itself (servicing events), then one Enhanced Packet Block per record.
// Every interface has link type LinkType, LINKTYPE_USER0 (147): no link
// type is assigned to VMBus, and the USER range is the one tcpdump.org
// sets aside for private formats. A host that is serviced hands the file
// to its successor, which appends a new section (a new Section Header
// Block and its own interfaces): pcapng readers, Wireshark's included,
// read the sections one after the other.
//
// # Record
//
// Each block's packet data is a record: a RecordHeaderSize-byte header
// (see RecordHeader), then the record's bytes — a control message whole,
// a ring packet as on the wire (descriptor, type header with its ranges,
// payload without padding or footer), nothing for a signal, a short JSON
// object for an event — cut at the snap length.
//
// # Cost
//
// Off, a capture costs its hooks one atomic load of a nil pointer (Tap).
// On, a record is framed in the Writer's own buffer under one lock and
// written through a buffered file: no allocation per record.
package capture
