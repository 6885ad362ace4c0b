// Package hosting is the host daemon a VMM embeds (layer 8, between the
// devices and the command line): the devices it serves, the registry of
// device kinds, and the servicing that saves every channel and the bus and
// hands them to a successor while the guests keep running.
package hosting
