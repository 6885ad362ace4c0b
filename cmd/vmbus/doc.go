// Command vmbus is the one command line of govmbus (layer 8): the host
// daemon (`vmbus host`), guest-side tools (`vmbus guest`), benchmarks
// (`vmbus bench`), and decoders for rings (`vmbus ring`), control messages
// (`vmbus proto`) and saved state (`vmbus state`). Each command group lives
// in its own file and holds flags, wiring and printing; what a command
// does beyond that lives in a package below it (the public layers, or
// internal/demo, soak, guestload, child, ringtext, chaos, ringbench).
//
// Exit status: 0 success, 1 the job failed, 2 bad usage or bad input.
// Errors are one line on stderr that names what was wrong; DESIGN.md's
// command-line contract is what tests and users depend on.
package main
