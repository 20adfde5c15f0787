#!/usr/bin/env python3
"""Where a root's time goes: sends queries one at a time (with a pause, like a lightly
loaded root) with profile=true and prints the median and p90 of each phase, of the slowest
shard call, of the slowest leaf's own search time and of the root's own cost (total minus
the slowest shard call).

usage: phases.py ROOT_URL QUERIES_FILE [N=300] [PAUSE_MS=20] [SEED=7] [EXTRA_PARAMS]
e.g.   phases.py http://127.0.0.1:8080 target/bench-results/msmarco.txt 300 20 7 '&scoring=local'
"""
import json
import random
import statistics
import sys
import time
import urllib.parse
import urllib.request


def main():
    url, path = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    pause = float(sys.argv[4]) / 1000 if len(sys.argv) > 4 else 0.02
    seed = int(sys.argv[5]) if len(sys.argv) > 5 else 7
    extra = sys.argv[6] if len(sys.argv) > 6 else ""
    queries = [line.strip() for line in open(path) if line.strip()]
    random.Random(seed).shuffle(queries)
    rows, errors = [], 0
    for q in queries[:n]:
        t0 = time.perf_counter()
        req = f"{url}/search?size=10&profile=true&q={urllib.parse.quote(q)}{extra}"
        try:
            body = json.load(urllib.request.urlopen(req))
        except Exception:
            errors += 1
            continue
        wall = (time.perf_counter() - t0) * 1000
        p = body["profile"]["phases"]
        shards = body["profile"]["search"]
        slowest = max(s["took_ms"] for s in shards)
        leaf = max(s.get("leaf_took_ms") or 0 for s in shards)
        rows.append({
            "client wall": wall,
            "root total": p["total_ms"],
            "parse": p["parse_ms"],
            "stats": p["stats_ms"],
            "search": p["search_ms"],
            "slowest shard call": slowest,
            "slowest leaf (own time)": leaf,
            "fetch": p["fetch_ms"],
            "root own cost": p["total_ms"] - slowest,
        })
        time.sleep(pause)
    print(f"{len(rows)} queries, {errors} errors (ms)")
    for key in rows[0]:
        v = sorted(r[key] for r in rows)
        print(f"{key:26s} p50 {statistics.median(v):7.3f}   p90 {v[int(len(v) * 0.9)]:7.3f}")


if __name__ == "__main__":
    main()
