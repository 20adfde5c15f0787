#!/usr/bin/env bash
# Cost of a query with the root serving its shards in-process (`scatter root --index`),
# against `tantivy-cli serve` on the same index, from outside (issue 21).
#
#   benches/scripts/cost-in-process.sh CORPUS.jsonl.gz QUERIES.txt [WORKDIR]
#
# Light workload: the Debian packages corpus (63,905 short documents) with short real queries
# (benches/data/msmarco-short-debian.txt: the MS MARCO dev queries of at most 3 words that name
# no package, since tantivy-cli also searches the id field);
# heavy: GCIDE with MS MARCO queries. Builds CORPUS with benches/data/gcide-small-responses.toml
# (title + body, `default` tokenizer, only title stored) into 1 shard (the peer's index), 4, 8
# and 16 shards; checks both sides return the same answers (same-answers.py); then measures
# with wrk (cost.sh: req/s, latency, server CPU per request) at 8 connections and 1:
#   peer        tantivy-cli serve on the 1-shard index
#   local-N     one `scatter root --index ...` process with N in-process shards
#   split-4     a root + one leaf node process serving the 4 shards (the old layout), and the
#               root's own CPU share ("root only")
# Needs target/release/scatter, wrk and `tantivy` (cargo install tantivy-cli) on PATH.
# Default settings on both sides, result cache off.
set -euo pipefail
corpus=$1
Q=$2
work=${3:-$(mktemp -d)}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
S=$repo/target/release/scatter
mkdir -p "$work" && cd "$work"
for n in 1 4 8 16; do
  "$S" index build --input "$corpus" --shards $n --out g$n --force --no-progress \
    --schema "$repo/benches/data/gcide-small-responses.toml" | tail -1
done
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
start() { "$@" > "log.$#.$RANDOM" 2>&1 & pids+=($!); }
indexes() { for k in $(seq 0 $(($1 - 1))); do echo --index g$1/shard-$k; done; }
start tantivy serve -i g1/shard-0 --host 127.0.0.1 -p 3000
peer=${pids[-1]}
start "$S" root --listen 127.0.0.1:8104 $(indexes 4) --result-cache-mb 0
l4=${pids[-1]}
start "$S" root --listen 127.0.0.1:8108 $(indexes 8) --result-cache-mb 0
l8=${pids[-1]}
start "$S" root --listen 127.0.0.1:8116 $(indexes 16) --result-cache-mb 0
l16=${pids[-1]}
# The split layout's node serves a copy: one process per shard directory.
rm -rf g4split && cp -r g4 g4split
start "$S" leaf $(indexes 4 | sed 's/g4/g4split/') --listen 127.0.0.1:7200
node=${pids[-1]}
sleep 1
a=127.0.0.1:7200
start "$S" root --listen 127.0.0.1:8204 --shard $a --shard $a --shard $a --shard $a --result-cache-mb 0
split=${pids[-1]}
sleep 3
for port in 8104 8108 8116 8204; do
  python3 "$here/same-answers.py" "$Q" 1000 http://127.0.0.1:$port http://127.0.0.1:3000 | tail -1
done
python3 - "$Q" <<'PY'
import sys, urllib.parse
qs = [l.strip() for l in open(sys.argv[1]) if l.strip()]
for name, fmt in [("scatter", "/search?size=10&q={}"), ("tcli", "/api/?nhits=10&q={}")]:
    open(f"paths-{name}.txt", "w").write("".join(fmt.format(urllib.parse.quote(q)) + "\n" for q in qs))
PY
for round in 1 2; do
  for c in 8 1; do
    echo "round $round c$c peer:      $("$here/cost.sh" http://127.0.0.1:3000 paths-tcli.txt $c 8 $peer)"
    echo "round $round c$c local-4:   $("$here/cost.sh" http://127.0.0.1:8104 paths-scatter.txt $c 8 $l4)"
    echo "round $round c$c local-8:   $("$here/cost.sh" http://127.0.0.1:8108 paths-scatter.txt $c 8 $l8)"
    echo "round $round c$c local-16:  $("$here/cost.sh" http://127.0.0.1:8116 paths-scatter.txt $c 8 $l16)"
    echo "round $round c$c split-4:   $("$here/cost.sh" http://127.0.0.1:8204 paths-scatter.txt $c 8 $split $node)"
  done
  echo "round $round c8 split-4 root only: $("$here/cost.sh" http://127.0.0.1:8204 paths-scatter.txt 8 8 $split)"
done
for c in 8 1; do
  "$S" bench --target http://127.0.0.1:8104 --queries "$Q" --rate max --connections $c \
    --duration 8s --warmup 1s --param size=10 --cpu-pid $l4 \
    --compare 'http://127.0.0.1:3000/api/?nhits=10&q={q}' --compare-cpu-pid $peer \
    --out "bench-local4-c$c.json" 2>/dev/null
done
