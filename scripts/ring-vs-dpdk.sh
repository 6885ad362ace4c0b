#!/usr/bin/env bash
# The README's ring table: `vmbus bench ring` against Debian's DPDK 22.11
# VMBus ring (scripts/dpdk-ring/dpdk-ring.c, the library's own send and
# receive calls), driven the same way: one writer and one reader thread on
# one 256 KiB ring, busy-polling, the reader copying every payload out.
# N alternations (default 5) of ours and DPDK's at each payload, one
# after the other in this run; prints the medians and their ratio, with
# the spread of the alternations' own ratios. At 64 B and 16 KiB it also
# runs govmbus's zero-copy reader and its eventfd-signalled mode, as
# ratios to the same DPDK runs.
# VMBUS=path runs that vmbus binary instead of building this tree's.
# Installs libdpdk-dev (apt) when missing; needs gcc and pkg-config.
# Usage: scripts/ring-vs-dpdk.sh [N] [PAYLOAD...]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5}
shift || true
sizes=${*:-64 1024 16384 65536}
if ! pkg-config --exists libdpdk 2>/dev/null || [ ! -e /usr/include/dpdk/rte_bus_vmbus.h ]; then
  sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get install -y libdpdk-dev >/dev/null
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
B=${VMBUS:-$dir/vmbus}
[ -n "${VMBUS:-}" ] || go build -o "$B" ./cmd/vmbus
# shellcheck disable=SC2046 # pkg-config's words are separate flags
gcc -O2 -Wall -o "$dir/dpdk-ring" scripts/dpdk-ring/dpdk-ring.c \
  $(pkg-config --cflags --libs libdpdk) -lrte_bus_vmbus -lpthread
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(git rev-parse --short HEAD), $(go version | cut -d' ' -f3), DPDK $(pkg-config --modversion libdpdk), $N alternations"
rate() { python3 -c 'import json,sys; print(json.load(sys.stdin)["packets_per_sec"])'; }
for size in $sizes; do
  case $size in
    64) count=4000000 ;; 1024) count=2000000 ;; 16384) count=300000 ;; *) count=100000 ;;
  esac
  extra=; case $size in 64 | 16384) extra=1 ;; esac
  common=(--payload "$size" --count "$count" --ring-size 262144 --json)
  : >"$dir/runs"
  for _ in $(seq "$N"); do
    ours=$("$B" bench ring "${common[@]}" | rate)
    dpdk=$("$dir/dpdk-ring" "${common[@]}" | rate)
    zc=0 sig=0
    if [ -n "$extra" ]; then
      zc=$("$B" bench ring --zero-copy "${common[@]}" | rate)
      sig=$("$B" bench ring --signal "${common[@]}" | rate)
    fi
    echo "$ours $dpdk $zc $sig" >>"$dir/runs"
  done
  python3 - "$size" "$extra" "$dir/runs" <<'PY'
import statistics as st, sys
size, extra, path = sys.argv[1], sys.argv[2], sys.argv[3]
runs = [list(map(float, l.split())) for l in open(path)]
col = lambda i: [r[i] for r in runs]
med = st.median
dpdk = med(col(1))
def row(name, i):
    v = med(col(i))
    pair = sorted(r[i] / r[1] for r in runs)
    print(f"  {name:<22} {v/1e6:7.2f} M packets/s {v*int(size)/1e9:6.2f} GB/s  {v/dpdk:5.2f}x DPDK"
          f"  (alternations {pair[0]:.2f}-{pair[-1]:.2f}x)")
print(f"payload {size}: DPDK 22.11 {dpdk/1e6:.2f} M packets/s {dpdk*int(size)/1e9:.2f} GB/s")
row("govmbus, copy", 0)
if extra:
    row("govmbus, zero-copy", 2)
    row("govmbus, --signal", 3)
PY
done
