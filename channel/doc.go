// Package channel is the KMCL channel model of govmbus (layer 6): a Go
// form of the channel API of Hyper-V's VMBus Kernel Mode Client Library,
// for both endpoints of a channel — the server (VSP, host side, on a
// *host.Guest) and the client (VSC, guest side, on a *guest.Client).
// Devices (layer 7) are written against it; it drives the rings (package
// ring) and the events, and leaves messages to the control planes (host,
// guest). docs/KMCL.md maps every KMCL function, callback and structure
// to its Go form here.
//
// # Lifecycle
//
// NewServer or NewClient allocates a channel, disabled. The Set* functions
// configure it and are refused (StatusInvalidParameter1) once it is
// enabled. Enable returns at once; Disable blocks until the channel is
// torn down and every goroutine it started has ended; Cleanup frees it.
// Pause and Start stop and resume packets. None of the lifecycle calls may
// be made from a state-change callback (StatusInvalidDeviceState) or from
// ProcessPacket.
//
// The states are KMCL's, per endpoint. Each diagram below is, arrow for
// arrow, the table the channel moves by (serverMoves, clientMoves in
// state.go); a transition it lacks is refused with
// StatusInvalidDeviceState. Paused° is a paused channel not open (yet,
// or again): State shows it as Paused; the guest's open leaves it
// Paused. Disable leads from every state to Disabled (server: the offer
// is rescinded; client: the channel is closed; Suspend and Closed run if
// it was open), and Cleanup from Disabled ends the channel.
//
// A server channel (Start is required: packets never flow before it).
// The top row waits for the guest's open, the bottom row is open; Start
// and Pause move along a row, the guest's open and close between them:
//
//	            ┌─────────┐  Start   ┌─────────┐  Pause   ┌─────────┐
//	Enable ───► │ Enabled │ ───────► │ Started │ ───────► │ Paused° │ ◄── Enable, after a
//	            └─────────┘          └─────────┘ ◄─────── └─────────┘     Pause while Disabled
//	              │     ▲              │     ▲     Start    │     ▲
//	        opens │     │ closes opens │     │ closes opens │     │ closes
//	              ▼     │              ▼     │              ▼     │
//	            ┌─────────┐  Start   ┌─────────┐  Pause   ┌─────────┐
//	            │ Stopped │ ───────► │ Active  │ ───────► │ Paused  │
//	            └─────────┘          └─────────┘ ◄─────── └─────────┘
//	                                               Start
//
// Pause leads from Enabled to Paused° and from Stopped to Paused too.
// Opened runs before "opens" (its error: no open); Started, then
// PostStarted, on every way into Active; Suspend on every way out of it
// (Pause, closes); Closed after "closes". A subchannel whose primary
// closes closes too and goes to Closed, which only Disable leaves.
//
// A client channel (starts by itself once open):
//
//	            ┌─────────┐  Pause   ┌─────────┐
//	Enable ───► │ Enabled │ ───────► │ Paused° │ ◄── Enable, after a
//	            └─────────┘ ◄─────── └─────────┘     Pause while Disabled
//	              │          Start     │
//	        opens │                    │ opens
//	              ▼                    ▼
//	            ┌─────────┐          ┌─────────┐
//	            │ Opened  │          │ Paused  │
//	            └─────────┘          └─────────┘
//	              │                   ▲      │
//	              │ (Started,   Pause │      │ Start (Started,
//	              ▼  PostStarted)     │      ▼  PostStarted)
//	            ┌──────────────────────────────┐
//	            │            Active            │
//	            └──────────────────────────────┘
//
// Opened lasts from the open (Opened ran and succeeded) to Started, on
// the worker's same turn. A client goes to Closed when its open fails
// (no offer, the open refused, Opened failed: from Enabled or Paused°)
// and when its open channel goes away (the host rescinds it, the
// connection is lost, the primary closes: from Opened, Active or Paused,
// with Suspend and Closed); only Disable leaves Closed.
//
// A subchannel (SetPrimary) can be enabled only while its primary is open,
// and goes to Closed when the primary closes.
//
// # Callbacks
//
// State callbacks run one at a time on the channel's worker goroutine:
// Opened (an error rolls the open back, no packet flows), then
// Started (may queue sends; the incoming queue is not live), then
// PostStarted (the incoming queue is live: synchronous sends belong here).
// Suspend precedes Closed; after Suspend no ProcessPacket runs until the
// next Started.
//
// A lifecycle call from inside a state callback fails
// (StatusInvalidDeviceState): the callback runs on the worker, which the
// call would wait for, so it could never return. The same call from
// another goroutine while a callback runs must wait for it instead. Go
// names no goroutine, so the channel tells the two apart by the id in
// the header of the caller's stack trace (goid.go), and only when a
// callback runs at the moment of the call: a lifecycle call that meets
// no callback pays nothing, and the worker reads its own id outside any
// servicing's blackout. A bare precondition ("never from a callback")
// would cost nothing but turn that misuse into a worker that waits for
// itself, and every later lifecycle call of the channel with it, which
// is why the check stays.
//
// # Incoming packets
//
// One receive goroutine per open channel reads the incoming ring in
// batches: it indicates data packets to ProcessPacket in ring order (or,
// with SetBlockingProcessing, hands them in order to the worker), routes
// completions to the outgoing packets that wait for them, and calls
// ProcessingComplete when the ring went from non-empty to empty.
//
// Lifetime: an indicated Packet owns a copy of its payload and external
// data descriptors, taken from the ring before ProcessPacket runs, in a
// bounded pool of SetMaxPacketCount Packet objects whose buffers grow to
// the largest packet seen (at most SetMaxPacketSize) and are then reused:
// the hot path allocates nothing. Copying (rather than holding the ring
// back until every packet of a batch is completed) lets the ring space go
// back to the sender at the end of each batch whatever the driver keeps,
// and gives the driver bytes the peer can no longer change. When the pool
// or the transaction quota is used up, the loop stops reading data packets
// (completions still pass) until a packet is completed.
//
// # Outgoing packets
//
// Sends run on the caller's goroutine. A packet that does not fit is
// copied into its OutPacket and queued in the channel, in order; the
// writer asks the peer for a signal through the pending send size, and
// the receive goroutine (woken by that signal) writes the queue out. A
// packet sent with SendWaitForCompletion completes when the peer's
// completion with its transaction id arrives (id = send sequence << 32 |
// packet slot, so a late completion never matches a reused packet). A
// packet without a completion routine frees itself then, as KMCL's
// default routine does. A send on an enabled channel that is not open
// yet queues until it opens. A
// paused server channel, or one being saved, writes nothing to its ring
// until Start: what it sends waits in the queue, which a save records
// and a servicing's successor sends.
//
// # Locks
//
// Channel's doc comment gives its lock order and groups its fields by
// the lock that guards them. The lifecycle state (phase) and the state
// of the incoming queue within it (flow) are under mu; the send side's
// own view of a pause or save (the write gate, paused.go) is under
// sendMu, which the send and completion paths hold anyway.
//
// # Goroutines and signals
//
// Per enabled channel: one worker goroutine (client: it also waits for the
// offer and opens) and, while open, one receive goroutine; sends use none.
// A batch costs at most one signal to the peer: commits of both rings at
// the end of a batch share it. Disable waits for both goroutines.
//
// Between two processes, a lock taken right after a packet was written to
// or read from the shared ring waits for those bytes to cross to the
// other core (a locked instruction waits for the stores and loads before
// it), so the per-packet paths take locks a batch at a time: the receive
// loop takes packet objects for a batch under one lock (one at a time
// under a transaction quota), TrySendBatch writes a burst under one, and
// CompletePackets completes a batch under one. A driver that answers
// small packets does best to answer them at ProcessingComplete, as echo
// does.
//
// Completion routines and ProcessPacket run on the receive goroutine, as
// the packet arrives; a goroutine waiting in SendSynchronousRequest is
// woken by it, a hand-off that on a machine with an idle core costs the
// runtime a second thread's wake-up. A driver after the least latency
// without polling works in its callbacks, sending the next request from
// the completion of the last (echo's PingFromCompletion; the README's
// Latency section measures both ways).
//
// In a process that is otherwise idle, each round trip also wakes the
// runtime's sysmon thread: it sleeps while every P is idle, and the first
// system call after that (the signal to the peer) wakes it. That is most
// of what the runtime poller's floor costs above the eventfd floor
// (`vmbus bench floor`, raw poller). The signal cannot skip the runtime's
// system-call bookkeeping: the peer shares the eventfd's open file, and
// could make a raw write block with a P held.
//
// # Polling
//
// SetPoll trades CPU for latency. With a budget D, the receive goroutine
// does not sleep at the end of a batch: it leaves the incoming ring's
// interrupt mask set and spins on the ring's write index (one load per
// look, a runtime.Gosched between looks so that the sender it just woke
// runs on its P) for up to the current budget. A peer writing meanwhile
// sees the mask set and signals nothing, so a packet costs neither side
// a wake-up. The poll ends when a packet arrives (the loop reads it, mask
// still set), when the channel wakes its own loop (a Pause, a freed
// packet object: wakeRx flags the loop as well as signalling its event,
// which a poll does not read), or when the budget runs out. Then, and
// only then, it unmasks the way every batch ends: the mask is cleared by
// a swap (a full barrier) and the write index loaded once more; a packet
// that came in between is read, else the loop sleeps. The writer's side
// mirrors it (its index published by a swap, then the mask loaded), so
// either the writer sees the mask clear and signals, or the re-check
// sees its packet: no wake-up is lost at the switch.
//
// The budget adapts (poller): a poll that finds a packet doubles it, up
// to D; one that runs out halves it, and below D/16 it is zero, so the
// loop sleeps at every batch's end as if SetPoll were 0. A wake-up that
// finds work within 4D + 250 µs of going to sleep re-arms D: packets
// come close together, and while both ends sleep a round trip takes two
// wake-ups, so that is the sign that polling would pay. Re-arms back
// off: until a poll finds a packet again, each skips twice as many such
// wake-ups as the last, up to 63, so a peer whose answers never come
// within D (it does not poll, or the machine is too loaded to run it)
// costs ever fewer spins. What it costs: an idle channel spins at most D
// after its last packet and then sleeps, using no CPU; a channel whose
// packets come more than 4D + 250 µs apart never polls; one whose
// packets come closer than that but never within a poll spins, after
// the first few, about D per 64 packets for nothing. Polling takes a
// core while it spins: two polling ends on a two-core machine leave none
// for anything else, and on a loaded one a spinner that is descheduled
// delays its peer by a time slice. Stats counts the polls that found a
// packet (PollHits), those that ran out (PollMisses) and the sleeps
// (Sleeps).
//
// Only the incoming ring is polled. A writer waiting for ring space (the
// send queue, WaitSendSpace) is still woken by the peer's signal, which
// a polling loop hears when its poll ends, at most D later. A client
// channel takes its client's guest.Config.ChannelPoll unless SetPoll set
// its own.
//
// # GPADLs
//
// Clients create and delete GPADLs (CreateGpadl, DeleteGpadl: the delete
// waits while the server has it mapped); servers map and unmap them
// (MapGpadl, UnmapGpadl; one mapping at a time). The wire has no read-only
// bit: the client records GpadlReadOnly (GpadlIsReadOnly), the VSP learns
// it through its own protocol and calls MarkGpadlReadOnly, after which a
// writable map fails.
//
// # Save/restore
//
// Server channels save their state in chunks with KMCL's exact semantics
// (SaveBegin, SaveContinue, SaveEnd; RestoreFromBuffer) in the container
// of package savedstate; docs/SAVED_STATE.md documents every record.
// Save runs on a channel that is not running (Pause first: no incoming
// packet is outstanding then, but those the driver marked restartable,
// Packet.SetRestartable) and keeps only logical state: ids, open
// parameters, which GPADLs were mapped, the send queue in order (packets
// with their payloads, completions waiting for ring space), the packets in
// the ring awaiting completions, the transaction id sequence, the VSP's
// bytes per packet (SetSavePacketCallbacks), and the restartable packets
// still to do, which the restored channel indicates again. The rings stay in guest
// memory: a restore re-reads and checks their indices when the channel
// re-attaches. Restore goes into a configured, disabled channel before
// Enable; Enable re-attaches it to the channel the restored host
// (host.Restore) holds for it, or with ServerForceNewChannel abandons that
// instance and offers anew. docs/KMCL.md has the servicing sequence.
// Between SaveBegin and SaveEnd the calls that would change what the save
// captured (Start, Disable, sends, GPADL maps) fail, so a state handed
// out is never stale.
//
// # Errors
//
// Failures are errors that match a Status (an NTSTATUS) with errors.Is.
// One caused by a layer below wraps that cause as well, so errors.Is also
// matches it (ring.ErrCorrupt for a ring the peer broke, savedstate.ErrInvalid
// for a state that does not restore). A caller's misuse (completing a packet twice, sending a packet that is
// being sent, freeing it) panics.
package channel
