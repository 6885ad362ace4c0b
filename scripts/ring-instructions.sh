#!/usr/bin/env bash
# The README's per-packet cost table: instructions per packet to write a
# packet and read it back (copying the payload out) on one thread, counted
# by callgrind, for govmbus's ring (the loop of `go test -bench WriteRead
# ./ring`) and for Debian's DPDK 22.11 VMBus ring (the same loop in
# scripts/dpdk-ring/dpdk-ring.c --one-thread). Instruction counts do not
# depend on the machine's load, so this table reproduces where timings do
# not; it says nothing of the cross-core traffic that bounds two threads
# (scripts/ring-vs-dpdk.sh measures that), nor of large payloads, where
# the count is the copy routine's (glibc's memcpy may copy with one
# repeated instruction that callgrind counts per step, Go's memmove with
# 32-byte vector loops).
# Installs valgrind and libdpdk-dev (apt) when missing.
# Usage: scripts/ring-instructions.sh [PAYLOAD...]
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${*:-64 1024}
need=
command -v valgrind >/dev/null || need="$need valgrind"
[ -e /usr/include/dpdk/rte_bus_vmbus.h ] || need="$need libdpdk-dev"
if [ -n "$need" ]; then
  sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  # shellcheck disable=SC2086 # one word per package
  $sudo apt-get install -y $need >/dev/null
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go test -c -o "$dir/ring.test" ./ring
# shellcheck disable=SC2046 # pkg-config's words are separate flags
gcc -O2 -Wall -o "$dir/dpdk-ring" scripts/dpdk-ring/dpdk-ring.c \
  $(pkg-config --cflags --libs libdpdk) -lrte_bus_vmbus -lpthread
# collected RUN... prints the instructions callgrind collected.
collected() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 |
    awk '/Collected/ {gsub(",", "", $4); print $4}'
}
n=100000
echo "$(git rev-parse --short HEAD), $(go version | cut -d' ' -f3), DPDK $(pkg-config --modversion libdpdk), $n packets each"
printf '%-8s %14s %14s %8s\n' payload govmbus DPDK ratio
for size in $sizes; do
  # One P and no asynchronous preemption, so that callgrind's collection,
  # which follows a thread, stays with the benchmark's goroutine; and no
  # RDTSCP, an instruction this valgrind cannot run.
  ours=$(GOMAXPROCS=1 GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off collected \
    --toggle-collect='*BenchmarkWriteRead.func1' "$dir/ring.test" -test.run='^$' \
    -test.bench="^BenchmarkWriteRead/payload=$size\$" -test.benchtime=${n}x)
  dpdk=$(collected --toggle-collect=one_thread "$dir/dpdk-ring" --one-thread --payload "$size" --count $n)
  awk -v s="$size" -v o="$ours" -v d="$dpdk" -v n=$n \
    'BEGIN { printf "%-8s %14.0f %14.0f %7.2fx\n", s, o / n, d / n, d / o }'
done
