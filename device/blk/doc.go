// Package blk is govmbus's virtual disk (layer 7): a VSP that serves a
// file as a disk and a VSC that gives it to Go code as an io.ReaderAt and
// io.WriterAt, built only on the public KMCL channel API of package
// channel. Data moves as storvsc's does: each READ or WRITE is a
// GPA-direct packet whose ranges name a buffer in guest memory, which the
// VSP reads or fills in place through a bounds-checked view.
//
// The protocol — message layouts, operations, statuses, limits and what
// the VSP does with a bad request — is docs/BLK.md; wire.go holds it in
// code. The guest is untrusted: a malformed or out-of-range request gets
// an error status, never a panic nor an access outside the file or the
// guest memory the packet names.
package blk
