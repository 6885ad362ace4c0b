// Package ringtext holds the text and JSON forms of ring packets that
// `vmbus ring` reads and prints: the --range and --transfer-range specs
// of a packet to write (ParseGPARange, ParseTransferRange), one packet as
// a JSON object (FromPacket), a ring's control page with its unread
// packets (NewDump, Dump.WriteText), and an integration-component message
// taken apart (DecodeIC: `ic decode`, and `ring dump --ic` for in-band
// payloads).
//
// The forms are the command line's contract, not the ring's: a library
// user has ring.Packet and gpa.Range, so they live here rather than in
// package ring. A spec is typed by a user, and a ring file may come from
// anyone: the parsers and the IC decoder return errors, never panic, and
// are fuzzed.
package ringtext
