#!/usr/bin/env bash
# Cost of a query, Scatter vs `tantivy-cli serve` on the same index files, from outside.
#
#   benches/scripts/cost-vs-peer.sh CORPUS.jsonl.gz [WORKDIR]
#
# Needs: a release build (target/release/scatter), `wrk` (Debian package), `tantivy` on PATH
# (`cargo install tantivy-cli`, 0.24 opens tantivy 0.27 indexes). Builds CORPUS with
# benches/data/gcide-small-responses.toml (only `title` stored: small responses, so the peer's
# missing TCP_NODELAY does not stall it) into 1 shard (the peer's index) and 4 shards; starts
# the peer, one leaf node serving the 4 shards + a root, and the old layout (4 leaf processes
# + a root); checks that both sides return the same answers (same-answers.py); then measures
# with wrk (cost.sh: req/s, latency, server CPU per request) at 8 connections and 1, and with
# `scatter bench --compare` beside it. Root and node run with --worker-threads 1 (they share
# the 2 cores with each other and the load generator; see docs/benchmarks.md).
set -euo pipefail
corpus=$1
work=${2:-$(mktemp -d)}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
S=$repo/target/release/scatter
Q=$repo/benches/data/msmarco-1000.txt
mkdir -p "$work" && cd "$work"
for n in 1 4; do
  "$S" index build --input "$corpus" --shards $n --out g$n --force --no-progress \
    --schema "$repo/benches/data/gcide-small-responses.toml" | tail -1
done
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
start() { "$@" > "log.$#.$RANDOM" 2>&1 & pids+=($!); }
start tantivy serve -i g1/shard-0 --host 127.0.0.1 -p 3000
start "$S" leaf --index g4/shard-0 --index g4/shard-1 --index g4/shard-2 --index g4/shard-3 --listen 127.0.0.1:7100 \
  --worker-threads 1
node=${pids[-1]}
leaves=()
for k in 0 1 2 3; do start "$S" leaf --index g4/shard-$k --listen 127.0.0.1:710$((k + 1)); leaves+=(${pids[-1]}); done
sleep 1
a=127.0.0.1:7100
start "$S" root --listen 127.0.0.1:8081 --shard $a --shard $a --shard $a --shard $a --result-cache-mb 0 \
  --worker-threads 1
root1=${pids[-1]}
start "$S" root --listen 127.0.0.1:8084 --shard 127.0.0.1:7101 --shard 127.0.0.1:7102 \
  --shard 127.0.0.1:7103 --shard 127.0.0.1:7104 --result-cache-mb 0 --worker-threads 1
root4=${pids[-1]}
peer=${pids[0]}
sleep 3
python3 "$here/same-answers.py" "$Q" 1000 http://127.0.0.1:8081 http://127.0.0.1:3000 | tail -1
python3 "$here/same-answers.py" "$Q" 1000 http://127.0.0.1:8084 http://127.0.0.1:3000 | tail -1
python3 - "$Q" <<'PY'
import sys, urllib.parse
qs = [l.strip() for l in open(sys.argv[1]) if l.strip()]
for name, fmt in [("scatter", "/search?size=10&q={}"), ("tcli", "/api/?nhits=10&q={}"),
                  ("scatter-false", "/search?size=10&track_total_hits=false&q={}"),
                  ("scatter-1000", "/search?size=10&track_total_hits=1000&q={}")]:
    open(f"paths-{name}.txt", "w").write("".join(fmt.format(urllib.parse.quote(q)) + "\n" for q in qs))
PY
for round in 1 2; do
  for c in 8 1; do
    echo "round $round c$c peer:      $("$here/cost.sh" http://127.0.0.1:3000 paths-tcli.txt $c 8 $peer)"
    echo "round $round c$c 1 node:    $("$here/cost.sh" http://127.0.0.1:8081 paths-scatter.txt $c 8 $node $root1)"
    echo "round $round c$c 4 procs:   $("$here/cost.sh" http://127.0.0.1:8084 paths-scatter.txt $c 8 $root4 "${leaves[@]}")"
  done
  echo "round $round c8 1 node root only: $("$here/cost.sh" http://127.0.0.1:8081 paths-scatter.txt 8 8 $root1)"
  echo "round $round c8 1 node false:     $("$here/cost.sh" http://127.0.0.1:8081 paths-scatter-false.txt 8 8 $node $root1)"
  echo "round $round c8 1 node 1000:      $("$here/cost.sh" http://127.0.0.1:8081 paths-scatter-1000.txt 8 8 $node $root1)"
done
for c in 8 1; do
  "$S" bench --target http://127.0.0.1:8081 --queries "$Q" --rate max --connections $c \
    --duration 8s --warmup 1s --param size=10 --cpu-pid $node --cpu-pid $root1 \
    --compare 'http://127.0.0.1:3000/api/?nhits=10&q={q}' --compare-cpu-pid $peer \
    --out "bench-node-c$c.json" 2>/dev/null
done
