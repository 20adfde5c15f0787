#!/usr/bin/env bash
# Acknowledged documents per second of `scatter index push` into an empty cluster of
# 4 shards x 2 replicas: two leaf nodes, each serving all four shards (created empty with
# --create), one root. Prints the push report, then 15 s of wrk posting bulks of 100 new
# documents (an independent client, benches/scripts/wrk-bulk.lua), and the root's and the
# leaves' CPU seconds over both.
#
# usage: benches/scripts/push-throughput.sh CORPUS.jsonl[.gz] [SCATTER_BIN] [PUSH ARGS...]
#   e.g. benches/scripts/push-throughput.sh ../shared/corpora/gcide-dictionary.jsonl.gz
set -euo pipefail
corpus=$1
bin=${2:-target/release/scatter}
shift $(( $# >= 2 ? 2 : 1 ))
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

for n in 1 2; do
  args=()
  for k in 0 1 2 3; do args+=(--index "$work/node$n/shard-$k"); done
  "$bin" leaf "${args[@]}" --create --num-shards 4 --listen "127.0.0.1:$((7300 + n))" \
    >"$work/node$n.log" 2>&1 &
  pids+=($!)
done
replicas=127.0.0.1:7301,127.0.0.1:7302
"$bin" root --listen 127.0.0.1:8390 --shard $replicas --shard $replicas --shard $replicas \
  --shard $replicas >"$work/root.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -sf http://127.0.0.1:8390/readyz >/dev/null && break
  sleep 0.1
done
"$bin" index push --input "$corpus" --target http://127.0.0.1:8390 --no-progress \
  --report "$work/report.json" "$@"
python3 - "$work/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"acknowledged {r['indexed']} of {r['lines']} in {r['seconds']:.1f} s: "
      f"{r['indexed'] / r['seconds']:.0f} docs/s (retries {r['retries']}, failed {r['failed']})")
PY
if command -v wrk >/dev/null; then
  # The same writes from an independent client: bulks of 100 new documents, 4 connections.
  wrk -t1 -c4 -d15s -s "$(dirname "$0")/wrk-bulk.lua" http://127.0.0.1:8390 |
    awk '/Requests\/sec/ {printf "wrk: %.0f bulks/s = %.0f docs/s\n", $2, $2 * 100} /Non-2xx/ {print "wrk: " $0}'
  curl -s http://127.0.0.1:8390/metrics | grep -E '^scatter_root_(ingest_docs|repairs)_total' || true
fi
for pid in "${pids[@]}"; do
  awk -v pid="$pid" '{printf "pid %s cpu %.1f s\n", pid, ($14 + $15) / 100}' "/proc/$pid/stat"
done
curl -s http://127.0.0.1:8390/cluster/replicas/check | python3 -c \
  'import json,sys; b=json.load(sys.stdin); print("replicas agree:", b.get("consistent"))' || true
