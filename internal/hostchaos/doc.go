// Package hostchaos is a hostile VMBus host: it serves guests through a
// real host (vmbus host's daemon) and, drawing every choice from one
// seeded PCG, misbehaves as a host can, so that the guest side's
// survival can be judged from outside (`vmbus host --chaos`). It is the
// mirror of package chaos, the hostile guest.
//
// # Shape
//
// The hostile host is a relay. It listens on the socket guests dial and,
// for each guest, dials the real host on an upstream socket as a guest
// would. Everything the guest sends is passed up: its control messages,
// its guest memory and its channels' events (the relay keeps a copy of
// each, so it can signal the guest and write into the guest's rings).
// Everything the real host answers is passed down. Between the two the
// relay rewrites, drops, duplicates, delays, truncates and pads the
// host's control messages, injects messages the host never sent, and
// writes packets and indices into the host→guest ring of every channel
// the guest opened — the ring the guest reads — while the real host
// writes there too. The devices behind it are the real ones, so a guest
// that is not attacked at a given moment makes progress.
//
// # Choices
//
// Each guest connection is a session. Its choices come from a PCG seeded
// with Config.Seed and the session's number (in the order guests
// connect): which misbehaviours it arms, when, on which channel, with
// which values. What the guest then does depends on timing as well, so
// two runs of a seed try the same things but may see different outcomes.
//
// # Report
//
// The Report counts, per kind of misbehaviour, how often it was tried
// and what the guest did within reactWindow after it: hung up, released
// or closed the channel, tore down a GPADL, or carried on. The relay sees
// only the bus; whether the guest process failed cleanly is for the
// caller to judge (its exit status and its error output), as the e2e test
// and scripts/hostile-campaign.sh do. docs/HOSTILE_HOST.md lists every
// kind.
package hostchaos
