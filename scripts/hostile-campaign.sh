#!/usr/bin/env bash
# A hostile-host campaign (docs/HOSTILE_HOST.md): seed after seed, for
# TOTAL seconds, a `vmbus host --chaos` runs PER seconds with echo, blk
# and the integration components, and an hvsock service relayed to a
# local echo server, while guests (stream, disk verify, ic, hvsock dial of
# 256 KiB) use it over and over; then a good host serves the same four
# commands once. Each guest run is judged: "ok" (exit 0), "error" (exit 1, a clean
# failure), "HANG" (not done within its bound: stream and disk verify get
# BOUND seconds, then SIGQUIT and its goroutine dump; ic must end within
# BOUND seconds of its SIGTERM), "CORRUPT" (hvsock dial's output is not
# its input, or after a failure not a prefix of it: bytes out of order,
# twice or invented), "PANIC" (a Go panic or goroutine dump on stderr
# otherwise), "exit N" (anything else). The stderr of every HANG and
# PANIC is kept under $FAILDIR (default /tmp/hostile-failures). A hostile host that keeps a
# guest waiting is cut off only when its PER seconds end, so a PER above
# BOUND lets a wait without a bound show. Prints a line
# per seed and, at the end, every kind of misbehaviour with how often it
# was tried and what the guests did next, summed over the seeds.
# The guests' own bounds add up to about a minute at worst (negotiation
# 10 s, an open 10 s, a blk request 30 s, each channel's close 5 s), so
# BOUND is 60 s and PER 70 s by default. The errors of the "error" runs are
# counted too, by their message with the numbers taken out.
# Usage: scripts/hostile-campaign.sh [TOTAL [PER [FIRST_SEED [BOUND]]]]
#   (seconds; defaults 600, 70, 1, 60)
set -euo pipefail
cd "$(dirname "$0")/.."
TOTAL=${1:-600}
PER=${2:-70}
SEED=${3:-1}
BOUND=${4:-60}
FAILDIR=${FAILDIR:-/tmp/hostile-failures}
dir=$(mktemp -d)
host=
echoer=
trap '[ -n "$host" ] && kill "$host" 2>/dev/null; [ -n "$echoer" ] && kill "$echoer" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
go build -o "$dir/vmbus" ./cmd/vmbus
B=$dir/vmbus
truncate -s 4M "$dir/disk.img"
sock=$dir/bus.sock
devs=(--device echo --device blk="$dir/disk.img" --device ic --hvsock-relay 5000=unix:"$dir/echo.sock")
head -c 262144 /dev/urandom >"$dir/hv.in"
# The local echo server behind the relay: each connection's bytes back,
# its end passed on.
python3 -c '
import socket, sys, threading
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(64)
def echo(c):
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
        c.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=echo, args=(c,), daemon=True).start()
' "$dir/echo.sock" &
echoer=$!

# judge RC ERRFILE: the verdict on one guest run.
judge() {
  case $1 in 124 | 137) echo HANG; return ;; esac
  if grep -q -e '^panic:' -e '^goroutine [0-9]' "$2"; then echo PANIC; return; fi
  case $1 in
    0) echo ok ;;
    1) echo error ;;
    124 | 137) echo HANG ;;
    *) echo "exit $1" ;;
  esac
}

# guest NAME: one run of a guest command, bounded (ic is stopped by
# SIGTERM after 3 s and must then exit within BOUND seconds; the others
# have BOUND seconds),
# its verdict appended to $dir/verdicts.
guest() {
  local name=$1 rc=0 err
  err=$(mktemp -p "$dir")
  case $name in
    stream) timeout -s QUIT -k 5 "$BOUND" "$B" guest --socket "$sock" stream --payload 64 --count 20000 --idle 2s >/dev/null 2>"$err" || rc=$? ;;
    disk) timeout -s QUIT -k 5 "$BOUND" "$B" guest --socket "$sock" disk verify --size 1048576 >/dev/null 2>"$err" || rc=$? ;;
    ic) timeout -k "$BOUND" --preserve-status 3 "$B" guest --socket "$sock" ic >/dev/null 2>"$err" || rc=$?
      [ "$rc" = 143 ] && rc=0 ;; # stopped by SIGTERM, as asked
    hvsock) out=$(mktemp -p "$dir")
      timeout -s QUIT -k 5 "$BOUND" "$B" guest --socket "$sock" hvsock dial 5000 <"$dir/hv.in" >"$out" 2>"$err" || rc=$? ;;
  esac
  local v
  v=$(judge "$rc" "$err")
  if [ "$name" = hvsock ]; then
    if { [ "$rc" = 0 ] && ! cmp -s "$dir/hv.in" "$out"; } ||
      ! cmp -s -n "$(stat -c %s "$out")" "$dir/hv.in" "$out"; then
      v=CORRUPT
      echo "output of $(stat -c %s "$out") bytes, exit $rc, not the input's prefix" >>"$err"
    fi
    rm -f "$out"
  fi
  echo "$name $v" >>"$dir/verdicts"
  if [ "$v" = error ]; then
    # The message without its numbers (ids, sizes, durations, paths).
    sed -n '1{s/[0-9][0-9a-fx.]*/N/g; s|/[^ :]*|PATH|g; p}' "$err" | cut -c1-150 | sed "s/^/$name: /" >>"$dir/errors"
  fi
  if [ "$v" = PANIC ] || [ "$v" = HANG ] || [ "$v" = CORRUPT ]; then
    mkdir -p "$FAILDIR"
    cp "$err" "$FAILDIR/seed$SEED-$name-$(date +%s%N).stderr"
  fi
  rm -f "$err"
}

waitsock() { for _ in $(seq 100); do [ -S "$sock" ] && return 0; sleep 0.1; done; return 1; }

start=$(date +%s)
: >"$dir/reports"
: >"$dir/errors"
printf '%-6s %8s %6s  %-24s %-24s %-24s %-24s %s\n' seed sessions tried stream disk ic hvsock "good host after"
while [ $(($(date +%s) - start)) -lt "$TOTAL" ]; do
  : >"$dir/verdicts"
  "$B" host --socket "$sock" "${devs[@]}" --chaos --seed "$SEED" --chaos-duration "${PER}s" --json \
    >"$dir/report.json" 2>"$dir/host.log" &
  host=$!
  waitsock || { echo "seed $SEED: the host did not listen"; cat "$dir/host.log"; exit 1; }
  for g in stream disk ic hvsock; do
    (while kill -0 "$host" 2>/dev/null; do guest "$g"; done) &
  done
  wait "$host" || { echo "seed $SEED: the hostile host failed"; tail "$dir/host.log"; }
  host=
  wait $(jobs -p | grep -vx "$echoer")
  cat "$dir/report.json" >>"$dir/reports"
  # The same commands against a good host.
  "$B" host --socket "$sock" "${devs[@]}" 2>"$dir/good.log" &
  host=$!
  waitsock
  : >"$dir/after"
  for g in stream disk ic hvsock; do
    mv "$dir/verdicts" "$dir/verdicts.hostile"
    guest "$g"
    echo "$g $(cut -d' ' -f2- "$dir/verdicts")" >>"$dir/after"
    mv "$dir/verdicts.hostile" "$dir/verdicts"
  done
  kill "$host"; wait "$host" || true; host=
  tally() { grep "^$1 " "$dir/verdicts" | cut -d' ' -f2- | sort | uniq -c | awk '{printf "%s%s %s", sep, $2" "$3, $1; sep=", "}' | sed 's/  */ /g'; }
  read -r sessions tried < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["sessions"], sum(a["tried"] for a in d["actions"]))' "$dir/report.json")
  printf '%-6s %8s %6s  %-24s %-24s %-24s %-24s %s\n' "$SEED" "$sessions" "$tried" "$(tally stream)" "$(tally disk)" "$(tally ic)" "$(tally hvsock)" "$(awk '{printf "%s%s: %s", sep, $1, $2; sep=", "}' "$dir/after")"
  SEED=$((SEED + 1))
done
echo
python3 - "$dir/reports" <<'PY'
import json, sys, collections
tried, outs = collections.Counter(), collections.defaultdict(collections.Counter)
seeds = 0
for line in open(sys.argv[1]):
    if not line.strip():
        continue
    d = json.loads(line)
    seeds += 1
    for a in d["actions"]:
        tried[a["kind"]] += a["tried"]
        outs[a["kind"]].update(a["outcomes"])
print(f"misbehaviours over {seeds} seeds: kind, tried, what the guest did next (within 0.5 s)")
for k in sorted(tried):
    o = ", ".join(f"{n} {c}" for n, c in outs[k].most_common())
    print(f"  {k:34s} {tried[k]:6d}  {o}")
PY
echo
echo "guest errors (exit 1), by message:"
sort "$dir/errors" | uniq -c | sort -rn | head -40
