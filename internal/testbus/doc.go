// Package testbus is the test rig of govmbus: a host and its guests in one
// process, joined by transport.Pipe (or a socket in a temporary
// directory), each guest with its own guest memory. The tests of host,
// channel, the devices and the chaos guest build on it instead of keeping
// a copy each.
//
// Everything it starts is owned by the test: a goroutine serving a
// connection, a client, a host restored in the test's place are closed
// and waited for by cleanups registered with testing.TB.Cleanup, in the
// reverse order of their making, so that a test that registers
// leakcheck.Check first sees nothing left behind. Every wait is bounded
// (Timeout), generous enough for a loaded two-core machine.
//
// It sits below package channel (it imports host, guest and transport,
// never channel), because channel's own tests are in package channel: a
// rig that imported channel could not serve them. What a device test
// needs of a channel it passes in as a function (see Busy).
package testbus
