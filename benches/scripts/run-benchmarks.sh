#!/usr/bin/env bash
# Reproduces docs/benchmarks.md: builds the GCIDE corpus (126,240 docs) into 4 shards and one
# index, starts local clusters with `scatter up`, and runs `scatter bench` with the MS MARCO
# dev queries (punctuation removed). Needs ../shared (or CORPUS= and QUERIES=) and a release
# build. Results land in $OUT (default target/bench-results).
set -euo pipefail
cd "$(dirname "$0")/../.."
S=${S:-target/release/scatter}
CORPUS=${CORPUS:-../shared/corpora/gcide-dictionary.jsonl.gz}
QUERIES_TSV=${QUERIES:-../shared/queries/msmarco-doc-dev.tsv}
OUT=${OUT:-target/bench-results}
DUR=${DUR:-10s}
mkdir -p "$OUT"
Q=$OUT/msmarco.txt
python3 - "$QUERIES_TSV" "$Q" <<'PY'
import re, sys
with open(sys.argv[2], "w") as out:
    for line in open(sys.argv[1]):
        q = re.sub(r"[^A-Za-z0-9 ]+", " ", line.split("\t", 1)[-1]).strip()
        if q:
            out.write(q + "\n")
PY
[ -f "$OUT/gcide4/manifest.json" ] || $S index build --input "$CORPUS" --shards 4 --out "$OUT/gcide4" --no-progress
[ -f "$OUT/gcide1/manifest.json" ] || $S index build --input "$CORPUS" --shards 1 --out "$OUT/gcide1" --no-progress

PIDS=()
up() { # port, extra args...
  local port=$1; shift
  $S up --data-dir "$OUT/gcide4" --listen "127.0.0.1:$port" "$@" > "$OUT/up-$port.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "127.0.0.1:$port/readyz" >/dev/null && return; sleep 0.1; done
  echo "cluster on $port did not start" >&2; exit 1
}
stop() { kill -INT "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; PIDS=(); }
trap stop EXIT
bench() { $S bench --queries "$Q" --duration "$DUR" --warmup 2s --shuffle "${SEED:-1}" "$@"; }

echo "== 1. exact (global) vs local scoring, 4 shards x 1 replica, no result cache"
up 18081 --replicas 1 --result-cache-mb 0
for seed in 1 2 3; do
  SEED=$seed bench --target http://127.0.0.1:18081 --rate 200 --out "$OUT/exact-$seed.json"
  SEED=$seed bench --target http://127.0.0.1:18081 --rate 200 --param scoring=local --out "$OUT/local-$seed.json"
done
echo "== 2. root vs in-process single index at low load"
bench --target http://127.0.0.1:18081 --rate 50 --baseline-index "$OUT/gcide1" --out "$OUT/baseline.json" --plot "$OUT/baseline.svg"
echo "== 2b. where the time goes (profile=true, one query at a time, 20 ms apart)"
python3 benches/scripts/phases.py http://127.0.0.1:18081 "$Q" 300 20 | tee "$OUT/phases.txt"
echo "== 3. sweep"
bench --target http://127.0.0.1:18081 --sweep 100,200,400,600,800 --out "$OUT/sweep.json" --plot "$OUT/sweep.svg"
echo "== 4. saturation (closed loop)"
bench --target http://127.0.0.1:18081 --rate max --connections 16 --out "$OUT/max.json"
bench --target http://127.0.0.1:18081 --rate max --connections 16 --baseline-index "$OUT/gcide1" --out "$OUT/max-baseline.json"
stop
TCLI=${TANTIVY_CLI:-$(command -v tantivy || true)}
if [ -n "$TCLI" ]; then
  echo "== 4b. tantivy-cli serve (cargo install tantivy-cli) on the single index, same load"
  "$TCLI" serve -i "$OUT/gcide1/shard-0" --host 127.0.0.1 --port 18090 > "$OUT/tantivy-cli.log" 2>&1 &
  PIDS+=($!)
  sleep 2
  for c in 16 64; do
    bench --target http://127.0.0.1:18090/api/ --param nhits=10 --rate max --connections $c --out "$OUT/max-tantivy-cli-$c.json"
  done
  bench --target http://127.0.0.1:18090/api/ --param nhits=10 --rate 50 --out "$OUT/tantivy-cli-50.json"
  kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; PIDS=()
fi

echo "== 5. slow replica: 4 shards x 2 replicas, first replica of each shard +100ms on 5% of calls"
up 18082 --replicas 2 --result-cache-mb 0
bench --target http://127.0.0.1:18082 --rate 200 --out "$OUT/healthy.json"
curl -s 127.0.0.1:18082/cluster > "$OUT/healthy-cluster.json"
stop
up 18083 --replicas 2 --result-cache-mb 0 --fault-delay-ms 100 --fault-delay-rate 0.05
bench --target http://127.0.0.1:18083 --rate 200 --out "$OUT/slow-hedged.json"
curl -s 127.0.0.1:18083/cluster > "$OUT/slow-hedged-cluster.json"
stop
up 18084 --replicas 2 --result-cache-mb 0 --fault-delay-ms 100 --fault-delay-rate 0.05 --no-hedge
bench --target http://127.0.0.1:18084 --rate 200 --out "$OUT/slow-unhedged.json"
curl -s 127.0.0.1:18084/cluster > "$OUT/slow-unhedged-cluster.json"
stop
$S bench plot "$OUT/healthy.json" "$OUT/slow-hedged.json" "$OUT/slow-unhedged.json" -o "$OUT/slow-replica.svg"
echo "results in $OUT"
