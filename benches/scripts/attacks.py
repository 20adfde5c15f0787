#!/usr/bin/env python3
"""attacks.py SCATTER OUT_DIR [CORPUS QUERIES]: issue 19's attacks against a release cluster
with default settings, while an independent client (wrk) sends ordinary searches.

ONLY=TEXT runs only the attacks whose name contains TEXT. ROOT_ARGS adds root flags (e.g. `--result-cache-mb 0`, so that the ordinary searches are
not answered from the cache). Builds the Debian packages corpus (63,905 docs; numeric fields added as tests/common does:
words u64, released date, rating f64, team keyword, tag multi-valued keyword) into 8 shards
served by 2 leaf nodes (4 shards each) and a root with default limits. Baseline: wrk alone.
Then each attack runs in a loop for DUR seconds beside the same wrk load; reported per attack:
the attack's answers by status, wrk's p50/p99 and status classes, the root's peak RSS, and
whether every process is alive. Output: a Markdown table (stdout and OUT_DIR/attacks.md).
"""
import concurrent.futures as cf
import gzip
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import zlib

S, OUT = sys.argv[1], sys.argv[2]
CORPUS = sys.argv[3] if len(sys.argv) > 3 else "../shared/corpora/debian-packages.jsonl.gz"
QUERIES = sys.argv[4] if len(sys.argv) > 4 else "../shared/queries/msmarco-doc-dev.tsv"
DUR = int(os.environ.get("DUR", "15"))
WRK_CONNS = os.environ.get("WRK_CONNS", "4")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT_PORT, LEAF_PORTS = 18190, (17191, 17192)
BASE = f"http://127.0.0.1:{ROOT_PORT}"
os.makedirs(OUT, exist_ok=True)

SCHEMA = """id_field = "id"
default_fields = ["title", "body"]
[[fields]]
name = "title"
type = "text"
boost = 2.0
[[fields]]
name = "body"
type = "text"
[[fields]]
name = "section"
type = "keyword"
fast = true
[[fields]]
name = "words"
type = "u64"
fast = true
[[fields]]
name = "released"
type = "date"
fast = true
[[fields]]
name = "rating"
type = "f64"
fast = true
[[fields]]
name = "team"
type = "keyword"
fast = true
[[fields]]
name = "tag"
type = "keyword"
fast = true
"""


def prepare():
    corpus, schema = f"{OUT}/debian-numbers.jsonl", f"{OUT}/schema.toml"
    if not os.path.exists(corpus):
        with gzip.open(CORPUS, "rt") as src, open(corpus, "w") as dst:
            for line in src:
                d = json.loads(line)
                day = zlib.crc32(d["id"].encode()) % (24 * 365)
                d["words"] = len((d.get("body") or "").split())
                d["released"] = 946_684_800 + day * 86_400
                d["rating"] = (day % 1000) / 100.0
                d["team"] = d.get("maintainer") or ""
                d["tag"] = [t for t in (d.get("tags") or "").split(", ") if t]
                dst.write(json.dumps(d) + "\n")
    open(schema, "w").write(SCHEMA)
    if not os.path.exists(f"{OUT}/deb8/manifest.json"):
        subprocess.run([S, "index", "build", "--input", corpus, "--schema", schema, "--shards",
                        "8", "--out", f"{OUT}/deb8", "--no-progress"], check=True)
    paths = f"{OUT}/paths.txt"
    with open(QUERIES) as src, open(paths, "w") as dst:
        for line in src:
            q = re.sub(r"[^A-Za-z0-9 ]+", " ", line.split("\t", 1)[-1]).strip()
            if q:
                dst.write(f"/search?size=10&q={urllib.parse.quote_plus(q)}\n")
    return paths


def start():
    procs = []
    for n, port in enumerate(LEAF_PORTS):
        shards = [a for k in range(4 * n, 4 * n + 4) for a in ("--index", f"{OUT}/deb8/shard-{k}")]
        procs.append(subprocess.Popen([S, "leaf", "--listen", f"127.0.0.1:{port}", *shards],
                                      stdout=subprocess.DEVNULL, stderr=open(f"{OUT}/leaf{n}.log", "w")))
    shard_flags = []
    for k in range(8):
        shard_flags += ["--shard", f"127.0.0.1:{LEAF_PORTS[k // 4]}"]
    extra = os.environ.get("ROOT_ARGS", "").split()
    procs.append(subprocess.Popen([S, "root", "--listen", f"127.0.0.1:{ROOT_PORT}", *shard_flags, *extra],
                                  stdout=subprocess.DEVNULL, stderr=open(f"{OUT}/root.log", "w")))
    for _ in range(200):
        try:
            urllib.request.urlopen(f"{BASE}/readyz", timeout=1)
            return procs
        except Exception:
            time.sleep(0.1)
    raise SystemExit("cluster did not start")


def rss_mib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    except FileNotFoundError:
        return -1
    return -1


def call(method, path, body=None, headers=None, timeout=30):
    req = urllib.request.Request(BASE + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code
    except Exception:
        return "conn-error"


def post_search(obj, timeout=30):
    return call("POST", "/search", json.dumps(obj).encode(), {"content-type": "application/json"}, timeout)


def nested(n):
    return "(" * n + "web" + ")" * n


AGG = lambda aggs: {"q": "*", "size": 0, "aggs": aggs}
COUNTER = iter(range(10**9))


def cache_flood():
    i = next(COUNTER)
    return post_search({"q": "*", "size": 1, "filter": [f'team:"{i}-{j}-{"z" * 8000}"' for j in range(32)]})


def bulk_60mb():
    line = json.dumps({"id": "bulk-x", "title": "t", "body": "b" * 1000}) + "\n"
    body = (line * (60_000_000 // len(line))).encode()
    return call("POST", "/documents", body, {"content-type": "application/x-ndjson"}, timeout=120)


def half_sent(n=600):
    socks = []
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", ROOT_PORT), timeout=2)
            s.sendall(b"GET /search?q=web HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            socks.append(s)
        except OSError:
            break
    time.sleep(3)
    status = call("GET", "/healthz", timeout=5)
    for s in socks:
        s.close()
    return status


def pit_open():
    return post_search({"q": "web", "size": 1, "pit": "10m"})


ATTACKS = [
    ("lenient, 750 nested parentheses", lambda: post_search({"q": nested(750), "query_mode": "lenient"}), 2),
    ("strict, 3,000 nested parentheses", lambda: post_search({"q": nested(3000)}), 2),
    ("filter, 1,000 nested parentheses", lambda: post_search({"q": "web", "filter": [nested(1000)]}), 2),
    ("histogram extended_bounds.max 3.8e17", lambda: post_search(AGG({"h": {"histogram": {"field": "words", "interval": 1, "extended_bounds": {"min": 0, "max": 384307168202282368}}}})), 2),
    ("range with ranges: []", lambda: post_search(AGG({"r": {"range": {"field": "words", "ranges": []}}})), 2),
    ("histogram interval 1 over 0..10M", lambda: post_search(AGG({"h": {"histogram": {"field": "words", "interval": 1, "extended_bounds": {"min": 0, "max": 10_000_000}}}})), 2),
    ("histogram interval 0.0001 on rating", lambda: post_search(AGG({"h": {"histogram": {"field": "rating", "interval": 0.0001}}})), 2),
    ("date_histogram 1ms over 24 years", lambda: post_search(AGG({"d": {"date_histogram": {"field": "released", "fixed_interval": "1ms"}}})), 2),
    ("32 terms aggs of size 10,000", lambda: post_search(AGG({f"t{i}": {"terms": {"field": "team", "size": 10000}} for i in range(32)})), 2),
    ("heaviest allowed: 6 terms aggs of size 10,000", lambda: post_search(AGG({f"t{i}": {"terms": {"field": "team", "size": 10000, "shard_size": 10000}} for i in range(6)})), 2),
    ("distinct searches, 32 filters of 8 KB", cache_flood, 2),
    ("snippet=body x13,333, timeout 2 s", lambda: post_search({"q": "*", "size": 100, "snippet": ",".join(["body"] * 13333), "timeout_ms": 2000}), 2),
    ("bulk uploads of 60 MB", bulk_60mb, 4),
    ("1,450 points in time from one client", pit_open, 4),
    ("id of 70,000 bytes", lambda: call("POST", "/documents", (json.dumps({"id": "x" * 70000, "title": "t"}) + "\n").encode(), {"content-type": "application/x-ndjson"}), 2),
    ("text/plain POST /documents (CSRF)", lambda: call("POST", "/documents", b'{"id":"csrf","title":"x"}\n', {"content-type": "text/plain"}), 2),
    ("600 half-sent requests, then /healthz", half_sent, 1),
]


def wrk(paths, secs):
    out = subprocess.run(["wrk", "-t1", f"-c{WRK_CONNS}", f"-d{secs}s", "--latency", "-s",
                          f"{HERE}/wrk-rotate.lua", BASE, "--", paths],
                         capture_output=True, text=True).stdout
    line = next((l for l in out.splitlines() if l.startswith("RESULT")), "RESULT")
    return dict(kv.split("=") for kv in line.split()[1:])


def run_attack(fn, workers, secs, procs):
    stop, statuses, peak = time.time() + secs, {}, [0]

    def loop():
        while time.time() < stop:
            s = fn()
            statuses[s] = statuses.get(s, 0) + 1

    def sample():
        while time.time() < stop + 1:
            peak[0] = max(peak[0], rss_mib(procs[-1].pid))
            time.sleep(0.2)

    with cf.ThreadPoolExecutor(workers + 1) as ex:
        futs = [ex.submit(loop) for _ in range(workers)] + [ex.submit(sample)]
        for f in futs:
            f.result()
    return statuses, peak[0]


def main():
    paths = prepare()
    procs = start()
    rows = []
    base = wrk(paths, DUR)
    rows.append(("(none: baseline)", "", base, rss_mib(procs[-1].pid), True))
    only = os.environ.get("ONLY")
    for name, fn, workers in ATTACKS:
        if only and only not in name:
            continue
        box = {}
        t = threading.Thread(target=lambda: box.update(wrk=wrk(paths, DUR)))
        t.start()
        statuses, peak = run_attack(fn, workers, DUR, procs)
        t.join()
        alive = all(p.poll() is None for p in procs)
        rows.append((name, json.dumps(statuses), box["wrk"], peak, alive))
        if not alive:
            break
        time.sleep(1)
    lines = ["| attack | attack's answers | others: p50 / p99 ms | others: 2xx / 429 / 4xx / 5xx / sock err | root peak RSS MiB | all alive |",
             "|---|---|---|---|---|---|"]
    for name, st, w, peak, alive in rows:
        lines.append(f"| {name} | {st} | {w.get('p50_ms')} / {w.get('p99_ms')} | {w.get('ok')} / {w.get('s429')} / {w.get('s4xx')} / {w.get('s5xx')} / {w.get('sockerr')} | {peak} | {'yes' if alive else 'NO'} |")
    table = "\n".join(lines)
    print(table)
    open(f"{OUT}/attacks.md", "w").write(table + "\n")
    for p in procs:
        p.terminate()


if __name__ == "__main__":
    main()
