// Package gpa holds guest physical address ranges: the page size, page
// numbers and the wire form of a GPA range ({u32 byte count, u32 byte
// offset, u64 page number per page spanned}).
//
// GPA ranges appear in two places on VMBus: in GPA-direct ring packets (the
// ring package parses them) and in GPADL range buffers (the control plane
// sends them). Both use the encoding here, so it sits below every other
// layer and imports nothing of govmbus.
//
// Range lists come from an untrusted peer. ParseRanges validates every count
// and offset before it returns anything, never reads outside the slice it is
// given, and allocates nothing when the caller supplies buffers.
package gpa
