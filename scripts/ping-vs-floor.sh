#!/usr/bin/env bash
# The README's latency table: N runs (default 5) each of `vmbus guest ping
# --floor` and `vmbus guest ping --floor --from-completion`, interleaved,
# against a `vmbus host --device echo`; each run measures this machine's
# round-trip floors (`vmbus bench floor`'s) just before it pings, so each
# ratio is of two figures from the same minute. Prints the medians of the
# ratios to the eventfd floor, and of p50 to the runtime poller's floor,
# with the absolute figures of the same runs, and the raw poller floor
# (`vmbus bench floor`: the poller's without the runtime's sysmon
# wake-ups).
# Usage: scripts/ping-vs-floor.sh [N] [COUNT]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5}
COUNT=${2:-20000}
dir=$(mktemp -d)
host=
trap '[ -z "$host" ] || kill "$host" 2>/dev/null || true; rm -rf "$dir"' EXIT
go build -o "$dir/vmbus" ./cmd/vmbus
B=$dir/vmbus
"$B" host --socket "$dir/bus.sock" --device echo 2>"$dir/host.log" &
host=$!
for _ in $(seq 50); do [ -S "$dir/bus.sock" ] && break; sleep 0.1; done
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(git rev-parse --short HEAD), $N runs each of guest ping --count $COUNT --floor [--from-completion], load $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$N"); do
  "$B" guest --socket "$dir/bus.sock" ping --count "$COUNT" --floor --json >>"$dir/sync"
  "$B" guest --socket "$dir/bus.sock" ping --count "$COUNT" --floor --from-completion --json >>"$dir/chain"
done
python3 - "$dir/sync" "$dir/chain" <<'PY'
import json, statistics as st, sys
print(f"{'':<26} {'ping/floor':>11} {'(runs)':>13} {'ping':>10} {'eventfd floor':>14} {'ping/poller floor':>18} {'poller floor':>13} {'raw poller floor':>17}")
for name, path in (("ping", sys.argv[1]), ("ping --from-completion", sys.argv[2])):
    runs = [json.loads(l) for l in open(path)]
    m = lambda k: st.median(r[k] for r in runs)
    lo = lambda k: min(r[k] for r in runs)
    hi = lambda k: max(r[k] for r in runs)
    for q in ("p50", "p99"):
        r = f"{q}_vs_floor"
        line = f"{name+' '+q:<26} {m(r):10.2f}x {lo(r):5.2f}-{hi(r):5.2f}x {m('latency_'+q+'_us'):8.1f} us {m('floor_eventfd_'+q+'_us'):11.1f} us"
        if q == "p50":
            line += f" {m('p50_vs_poller_floor'):17.2f}x {m('floor_poller_p50_us'):10.1f} us {m('floor_raw_poller_p50_us'):14.1f} us"
        print(line)
PY
