#!/usr/bin/env bash
# Polling against sleeping, in one run: N interleaved rounds (default 5)
# of `vmbus guest ping --floor` and `vmbus guest stream --payload 64`
# against a host without --poll and one with --poll D (default 50us; the
# guest polls too), and of `vmbus bench ring --signal` one-way. Prints the
# medians: ping's p50 and p99 as multiples of the eventfd floor measured
# before each ping, CPU time per ping (guest and host processes), and the
# stream's packets per second as a share of the one-way ring's.
# Usage: scripts/poll-figures.sh [N] [D]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5}
D=${2:-50us}
dir=$(mktemp -d)
trap 'kill "$h0" "$h1" 2>/dev/null || true; rm -rf "$dir"' EXIT
go build -o "$dir/vmbus" ./cmd/vmbus
B=$dir/vmbus
"$B" host --socket "$dir/h0.sock" --device echo 2>"$dir/h0.log" &
h0=$!
"$B" host --socket "$dir/h1.sock" --device echo --poll "$D" 2>"$dir/h1.log" &
h1=$!
for _ in $(seq 50); do [ -S "$dir/h0.sock" ] && [ -S "$dir/h1.sock" ] && break; sleep 0.1; done
tick=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
med() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
count=20000
for _ in $(seq "$N"); do
  for mode in 0 1; do
    pid=$h0; poll=0
    [ "$mode" = 1 ] && pid=$h1 && poll=$D
    c0=$(cpu "$pid")
    "$B" guest --socket "$dir/h$mode.sock" --poll "$poll" ping --floor --count "$count" --json >"$dir/ping.json"
    c1=$(cpu "$pid")
    python3 - "$dir/ping.json" "$c0" "$c1" "$tick" "$count" >>"$dir/ping$mode" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c0, c1, tick, n = map(float, sys.argv[2:])
host = (c1 - c0) / tick / n * 1e6
print(d["p50_vs_floor"], d["p99_vs_floor"], d["latency_p50_us"], d["floor_eventfd_p50_us"], d["cpu_per_ping_us"], host)
PY
    "$B" guest --socket "$dir/h$mode.sock" --poll "$poll" stream --payload 64 --count 2000000 --json |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["packets_per_sec"])' >>"$dir/stream$mode"
  done
  "$B" bench ring --signal --payload 64 --count 2000000 --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["packets_per_sec"])' >>"$dir/ring"
done
col() { awk -v c="$2" '{print $c}' "$dir/$1" | med; }
ring=$(med <"$dir/ring")
echo "medians of $N interleaved runs; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in 0 1; do
  name="without --poll"; [ "$mode" = 1 ] && name="with --poll $D"
  python3 - "$name" "$(col ping$mode 1)" "$(col ping$mode 2)" "$(col ping$mode 3)" "$(col ping$mode 4)" \
    "$(col ping$mode 5)" "$(col ping$mode 6)" "$(med <"$dir/stream$mode")" "$ring" <<'PY'
import sys
name = sys.argv[1]
r50, r99, p50, f50, gcpu, hcpu, st, ring = map(float, sys.argv[2:])
print(f"{name}: ping p50 {r50:.2f}x and p99 {r99:.2f}x the eventfd floor (p50 {p50:.1f} us, floor {f50:.1f} us); "
      f"CPU per ping: guest {gcpu:.1f} us, host {hcpu:.1f} us; "
      f"stream 64 B {st/1e6:.2f} M packets/s = {100*st/ring:.0f}% of the one-way ring ({ring/1e6:.2f} M)")
PY
done
