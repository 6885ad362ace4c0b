#!/usr/bin/env bash
# The README's channel-versus-ring table: N interleaved runs (default 9)
# of `vmbus guest stream` against a `vmbus host --device echo`, and of
# `vmbus bench ring` as a round trip in one process, in two processes and
# one-way, at 64 B and 16 KiB; prints the medians and the stream's share.
# Usage: scripts/stream-vs-ring.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-9}
dir=$(mktemp -d)
trap 'kill "$host" 2>/dev/null || true; rm -rf "$dir"' EXIT
go build -o "$dir/vmbus" ./cmd/vmbus
B=$dir/vmbus
"$B" host --socket "$dir/bus.sock" --device echo 2>"$dir/host.log" &
host=$!
for _ in $(seq 50); do [ -S "$dir/bus.sock" ] && break; sleep 0.1; done
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(git rev-parse --short HEAD), $N interleaved runs"
rate() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["packets_per_sec"], d["bytes_per_sec"])'; }
med() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for size in 64 16384; do
  count=4000000; [ "$size" = 16384 ] && count=300000
  : >"$dir/st"; : >"$dir/rt"; : >"$dir/r2"; : >"$dir/ow"
  for _ in $(seq "$N"); do
    "$B" guest --socket "$dir/bus.sock" stream --payload "$size" --count "$count" --json | rate >>"$dir/st"
    "$B" bench ring --round-trip --signal --payload "$size" --count "$count" --json | rate >>"$dir/rt"
    "$B" bench ring --round-trip --signal --processes 2 --payload "$size" --count "$count" --json | rate >>"$dir/r2"
    "$B" bench ring --signal --payload "$size" --count "$count" --json | rate >>"$dir/ow"
  done
  col() { awk -v c="$2" '{print $c}' "$dir/$1" | med; }
  python3 - "$size" "$(col st 1)" "$(col st 2)" "$(col rt 1)" "$(col rt 2)" "$(col r2 1)" "$(col r2 2)" "$(col ow 1)" "$(col ow 2)" <<'PY'
import sys
size = sys.argv[1]
st, stb, rt, rtb, r2, r2b, ow, owb = map(float, sys.argv[2:])
f = lambda p, b: f"{p/1e6:.2f} M packets/s {b/1e9:.2f} GB/s"
print(f"payload {size}: stream {f(st, stb)}")
print(f"  ring round trip, 1 process   {f(rt, rtb)}  stream {100*st/rt:.0f}%")
print(f"  ring round trip, 2 processes {f(r2, r2b)}  stream {100*st/r2:.0f}%")
print(f"  one-way ring                 {f(ow, owb)}  stream {100*st/ow:.0f}%")
PY
done
