// Package top is vmbus top: a live table of a host's channels, read from
// its admin API (hosting/admin) once an interval. It turns two snapshots
// of the counters into rates (Rows), orders the rows (Sort), lays them out
// as text with ring occupancy as bars (Render), and runs the loop (Run):
// redrawn in place on a terminal, with keys to sort and q to quit, or one
// plain snapshot per interval otherwise. The tables are built from values,
// so everything but Run is tested without a host.
package top
