// Package hosting is the host daemon a VMM embeds (layer 8 of
// DESIGN.md, between the devices and the command line): it offers a set
// of devices to every guest that connects, and services itself — pauses
// every device, saves every channel and the bus, and hands them with
// every descriptor to a successor — while the guests keep running. `vmbus
// host` is this package behind flags.
//
// # Writing a VSP with govmbus
//
// A device back-end (VSP) is a server channel of package channel per
// guest: set its interface and packet callbacks, Enable (offer), Start.
// To be served by a Daemon, and serviced, it does three things more:
//
//  1. Its server implements Device: the servicing surface, mostly the
//     channel's own methods (StopIndications, Pause, Save as
//     channel.Channel.SaveChunks, StartHeld, Release, Start, Close).
//     A device that keeps state of its own beside the channel makes
//     Pause leave nothing in it that the channel's saved state does not
//     carry: complete the packets it holds, or mark them restartable
//     (channel.Packet.SetRestartable) so that the successor redoes them.
//     Devices implement Device without importing this package.
//  2. It can be restored: a constructor that takes the chunks Save gave,
//     calls channel.Channel.RestoreChunks before Enable, and does not
//     Start (the daemon starts every restored device held and releases
//     them all at once).
//  3. It is registered as a Kind: a name (and an argument, as in
//     blk=FILE) for the device list, and an Open that gives a Spec —
//     the offer (interface and instance), New for a guest, Restore for a
//     guest from saved chunks, Close.
//
// Then, in main (imports: hosting, hosting/stdkinds, servicing,
// servicing/stopsignal):
//
//	if ok, _ := hosting.AnswerProbe(os.Args[1:], os.Stdout); ok {
//		return // an upgrade's pre-flight asked what this build reads
//	}
//	ctx, stop := stopsignal.NotifyContext(context.Background()) // SIGINT, SIGTERM: first
//	defer stop()
//	hup := hosting.CatchHangup() // SIGHUP asks for a servicing, from now on
//	kinds := hosting.NewRegistry()
//	stdkinds.Register(kinds) // echo, blk, blk-ro and the integration components
//	kinds.Register(myKind)
//	d, err := hosting.New(hosting.Config{Socket: path, Kinds: kinds, Devices: []string{"echo", "mine"}, Hangup: hup})
//	h, inherited, err := servicing.Inherited() // an error: a handover that cannot be trusted
//	if err == nil && inherited {
//		err = d.Adopt(h) // this image is an exec servicing's successor
//	} else if err == nil {
//		err = d.Serve()
//	}
//	for {
//		select {
//		case <-hup:
//			err = d.ServiceContext(ctx) // exec: returns only if it failed
//			continue
//		case <-ctx.Done():
//		}
//		break
//	}
//	err = d.Shutdown(sctx)
//
// Each line matters to servicing. Without AnswerProbe, an exec into an
// upgraded binary takes it for the first release (it runs the binary
// with ProbeArgs, and a program that ignores them starts a second daemon
// as the probe). A SIGHUP caught by a channel of one's own rather than
// CatchHangup and Config.Hangup ends the new image of an exec that it
// meets before the image asks for SIGHUP again. stopsignal is Stopping,
// below. Config.Servicing Spawn needs more: a supervisor that keeps the
// process id and reaps the successors (servicing.Supervise, as `vmbus
// host` runs it), and AdoptSpawned in a successor (servicing.Spawned).
//
// The successor process, started with the same Config (or with devices
// added or dropped: Config.Devices says how they are matched), continues
// with Adopt (servicing.Inherited, after an exec) or
// AdoptSpawned (servicing.Spawned); ServiceTo hands over to a successor
// Daemon in the same process instead, as the package's example
// (example_test.go) does. What the process holds beside the daemon (a
// VMM's descriptors, its state) crosses an exec or a spawn only as
// Config.Carry gives it, files by name (state in a memfd), which the
// successor finds in Carried. Adding a device kind touches
// neither the daemon nor the command line: hosting/stdkinds registers
// govmbus's own.
//
// # Servicing
//
// A servicing runs its pre-flight first: it learns which saved-state
// kinds the successor reads (the successor binary's `host --state-kinds`,
// or a spawned successor's ready note) and refuses to go on if the state
// could not be read, before anything pauses (docs/SAVED_STATE.md,
// Compatibility). Then every device's packets stop at once, each device
// pauses, the bus is parked and saved, each channel is saved, and the
// whole goes into the host state (scope host, record kinds 0x0200–0x0203,
// docs/SAVED_STATE.md). A failure before the save resumes the old
// devices; one after it restores in this process from what was saved. The
// successor checks the whole state before it builds anything; a device
// whose channel does not restore is offered anew.
//
// # Stopping
//
// A stop asked for while a servicing runs must neither be lost nor end
// the host half-way. Catch SIGINT and SIGTERM (signal.NotifyContext)
// before anything else, in the first image and in every successor, and
// service with ServiceContext(ctx): a servicing whose ctx ends before its
// handover gives up (ServicingFailed, Stage "stop"; after the save it
// restores in this process) and returns, for the caller to Shutdown; a
// spawned successor that has the handover when ctx ends is sent SIGTERM.
// The one window left is an exec's: a signal that comes between the exec
// and the new image's signal.Notify meets the runtime's default action
// and ends the process, as a stop of a program that has not started does.
// Package servicing/stopsignal asks in its init, among the first
// packages initialised: under a millisecond into the new image, where
// `vmbus host`'s main runs about two milliseconds in (on a loaded machine
// both take longer). Measured on a 2-core machine with one guest, a
// SIGTERM up to about 5 ms after the SIGHUP (the exec comes about 1 ms
// after it) ended the host so, none 8 ms or more after; with Spawn none
// did. The last look at ctx is servicing.Exec's, just before the execve
// (Handover.Stop): a signal in the microseconds between the two is caught
// by the old image and lost with it, and so is one the runtime has caught
// but not yet handed on to ctx (a goroutine's hop): a SIGTERM sent right
// behind the SIGHUP was lost so in 2 of 15 trials on that machine.
//
// # Events
//
// Config.Events receives typed events — Listening, ServicingStarted,
// ServicingComplete (blackout and its phases), ServicingFailed (stage and
// error) — and the daemon logs each under a fixed message. A process that
// watches a host through its JSON log decodes the lines with DecodeEvent
// into the same types (vmbus demo and soak do).
//
// # Concurrency
//
// A Daemon's methods run on one goroutine, the daemon's; Channels alone
// is safe for concurrent use. Every goroutine the daemon starts ends by
// Shutdown or Close.
package hosting
