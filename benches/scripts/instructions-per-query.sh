#!/usr/bin/env bash
# Instructions per query (valgrind callgrind's `Ir`, user space only): a deterministic measure
# for A/B comparisons of CPU-cost changes on a noisy machine, where CPU time per query from
# wrk + cost.sh moves by ±15% between runs of the same binary. Repeats within 0.1%.
#
#   benches/scripts/instructions-per-query.sh scatter BINARY SHARDS_DIR QUERIES [N]
#       a `BINARY root --index SHARDS_DIR/shard-0 ...` process (result cache off)
#   benches/scripts/instructions-per-query.sh peer INDEX_DIR QUERIES [N]
#       `tantivy serve -i INDEX_DIR` (tantivy-cli)
#
# Sends 50 queries of QUERIES (one per line) to warm up, waits until the process is idle, then
# sends the first N (default 200) one after another with instrumentation on, and prints the
# instructions per query. Counts are
# comparable between two builds of the same program, not across programs (instructions per
# cycle differ: kernel time, cache misses and wake-ups are not counted). Needs valgrind.
set -euo pipefail
kind=$1
shift
port=$((20000 + RANDOM % 20000))
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
case $kind in
  scatter)
    bin=$1 dir=$2 queries=$3 n=${4:-200}
    shards=()
    for d in "$dir"/shard-*; do [[ $d == *.lock ]] || shards+=(--index "$d"); done
    cmd=("$bin" root --listen "127.0.0.1:$port" "${shards[@]}" --result-cache-mb 0)
    path="/search?size=10&q="
    ;;
  peer)
    index=$1 queries=$2 n=${3:-200}
    cmd=(tantivy serve -i "$index" --host 127.0.0.1 -p "$port")
    path="/api/?nhits=10&q="
    ;;
  *) echo "first argument: scatter or peer" >&2; exit 2 ;;
esac
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/cg.out" "${cmd[@]}" \
  > "$work/log" 2>&1 &
pid=$!
drive() {
  python3 - "$port" "$path" "$queries" "$1" <<'PY'
import sys, urllib.parse, urllib.request
port, path, queries, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
qs = [l.strip() for l in open(queries) if l.strip()][:n]
for q in qs:
    urllib.request.urlopen(f"http://127.0.0.1:{port}{path}{urllib.parse.quote(q)}").read()
PY
}
for _ in $(seq 1 120); do drive 1 2>/dev/null && break; sleep 1; done
drive 50
# Background work after a start (the statistics table's first build) must not be counted:
# wait until the process is idle (under 5 clock ticks of CPU in a second).
ticks() { read -r -a f < /proc/"$pid"/stat; echo $((f[13] + f[14])); }
for _ in $(seq 1 300); do
  a=$(ticks); sleep 1; b=$(ticks)
  (( b - a < 5 )) && break
done
callgrind_control -i on "$pid" > /dev/null
drive "$n"
callgrind_control -i off "$pid" > /dev/null
callgrind_control -d "$pid" > /dev/null
sleep 1
kill "$pid"
wait "$pid" 2> /dev/null || true
total=$(cat "$work"/cg.out* | grep -ah '^totals:' | awk '{s += $2} END {print s}')
echo "$kind: $((total / n)) instructions per query ($n queries)"
