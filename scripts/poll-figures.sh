#!/usr/bin/env bash
# Polling against sleeping, in one run: N interleaved rounds (default 5)
# of `vmbus guest ping --floor`, `vmbus guest ping --floor
# --from-completion` and `vmbus guest stream --payload 64` against a host
# without --poll and one with --poll D (default 50us; the guest polls too),
# and of `vmbus bench ring --signal` one-way. Prints the medians: ping's
# p50 and p99 as multiples of the eventfd floor measured before each ping
# (and p50 as a multiple of the runtime poller's floor), CPU time per ping
# (guest and host processes), and the stream's packets per second as a
# share of the one-way ring's.
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
    for pm in sync chain; do
      flag=; [ "$pm" = chain ] && flag=--from-completion
      c0=$(cpu "$pid")
      "$B" guest --socket "$dir/h$mode.sock" --poll "$poll" ping --floor --count "$count" $flag --json >"$dir/ping.json"
      c1=$(cpu "$pid")
      python3 - "$dir/ping.json" "$c0" "$c1" "$tick" "$count" >>"$dir/ping$mode$pm" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c0, c1, tick, n = map(float, sys.argv[2:])
host = (c1 - c0) / tick / (n + n // 10) * 1e6  # the warm-up's round trips too
print(d["p50_vs_floor"], d["p99_vs_floor"], d["latency_p50_us"], d["floor_eventfd_p50_us"], d["cpu_per_ping_us"], host, d["p50_vs_poller_floor"])
PY
    done
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
  for pm in sync chain; do
    f=ping$mode$pm
    python3 - "$name" "$pm" "$(col $f 1)" "$(col $f 2)" "$(col $f 3)" "$(col $f 4)" \
      "$(col $f 5)" "$(col $f 6)" "$(col $f 7)" <<'PY'
import sys
name, pm = sys.argv[1:3]
r50, r99, p50, f50, gcpu, hcpu, rp50 = map(float, sys.argv[3:])
how = "ping --from-completion" if pm == "chain" else "ping"
print(f"{name}, {how}: p50 {r50:.2f}x and p99 {r99:.2f}x the eventfd floor (p50 {p50:.1f} us, floor {f50:.1f} us), "
      f"p50 {rp50:.2f}x the poller floor; CPU per ping: guest {gcpu:.1f} us, host {hcpu:.1f} us")
PY
  done
  python3 - "$name" "$(med <"$dir/stream$mode")" "$ring" <<'PY'
import sys
name = sys.argv[1]
st, ring = map(float, sys.argv[2:])
print(f"{name}, stream 64 B: {st/1e6:.2f} M packets/s = {100*st/ring:.0f}% of the one-way ring ({ring/1e6:.2f} M)")
PY
done
