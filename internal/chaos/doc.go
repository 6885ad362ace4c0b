// Package chaos is a hostile VMBus guest: it connects to a running host
// (vmbus host) and does, for a while, what a malicious guest can, so
// that the host's isolation can be judged from outside (`vmbus guest
// chaos`).
//
// Every choice it makes — which action, which channel, which index or
// length to write — comes from one math/rand/v2 PCG seeded with
// Config.Seed, so a run can be repeated; what the host answers, and when
// it disconnects the guest, depends on timing and may differ between
// runs of the same seed.
//
// A run is a series of sessions: connect, misbehave, drop (or be
// dropped), reconnect. Within a session the guest
//
//   - rewrites the ring indices and descriptors of the channels it
//     opened, in its own memory, while the host reads them;
//   - sends malformed, truncated, oversized, out-of-order, unknown and
//     host-only control messages;
//   - builds GPADLs with bogus page numbers, overlapping or malformed
//     ranges, ranges outside its memory, half-sent ones, too many;
//     sends bodies and teardowns for GPADLs that do not exist;
//   - opens with bad downstream offsets, with another channel's GPADL,
//     with a corrupt ring, without events, twice; closes what is not open;
//   - floods signals (rate-limited, so that the flood measures the host
//     and not this process's appetite for CPU);
//   - switches a channel's eventfds, whose open files it shares with the
//     host, to blocking mode and pins the count of the host's event at
//     its limit, then asks for an answer the host must signal;
//   - fills a channel's rings with requests and never reads the answers,
//     and stops reading its control socket for a while;
//   - leaves with GPADLs and channels open.
//
// Besides those, some sessions speak the transport itself wrongly
// (oversized datagrams, unknown frame kinds, descriptors where none
// belong), on a socket of their own.
//
// The legitimate steps (contact, offers, a well-formed open whose rings
// are then abused) of some sessions go through package guest; the
// hostile ones go through transport, protocol and ring directly.
//
// The Report counts, per kind of action, how often it was tried and what
// the host did: ignored it, answered with a status, refused, rescinded,
// disconnected the guest.
package chaos
