#!/usr/bin/env python3
"""agg-paths.py QUERIES OUT_DIR: request paths for ../shared/tools/cost.sh — plain.txt (search
only), aggs.txt (+ a terms aggregation on `section`, default shard_size) and aggs-tight.txt
(shard_size = size = 10, which forces further rounds when the shards' tops disagree)."""
import json
import sys
import urllib.parse

queries = [l.strip() for l in open(sys.argv[1]) if l.strip()]
out = sys.argv[2]
terms = {"s": {"terms": {"field": "section", "size": 10}}}
tight = {"s": {"terms": {"field": "section", "size": 10, "shard_size": 10}}}
for name, aggs in [("plain", None), ("aggs", terms), ("aggs-tight", tight)]:
    with open(f"{out}/{name}.txt", "w") as f:
        for q in queries:
            path = f"/search?size=10&q={urllib.parse.quote_plus(q)}"
            if aggs:
                path += "&aggs=" + urllib.parse.quote(json.dumps(aggs))
            f.write(path + "\n")
