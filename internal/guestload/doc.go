// Package guestload is what a guest process of `vmbus demo` and `vmbus
// soak` does to the host's devices (the hidden `vmbus guest demo-load`):
// a ping, then checked echo streams on every channel and blk rounds that
// write, read back and compare, side by side for a duration, reported as
// JSON lines (Line). It also holds the whole-disk check of `vmbus guest
// disk verify`.
//
// It stands on the device clients (device/echo, device/blk) and the guest
// control plane; the command line only parses flags, dials and prints.
package guestload
