#!/usr/bin/env python3
"""log-growth.py SCATTER OUT_DIR [CORPUS]: issue 20's growth measurements against a release
build, 1 shard x 2 replicas (two leaf processes and a root, plain gRPC on loopback).

1. 10,000 versions of one 2 KB document (POST /documents, one at a time): version log bytes
   on each replica.
2. 10,000 blind deletes of absent ids (DELETE /documents/{id}): log bytes, versioned entries
   and leaf RSS right after, then after the tombstone retention (RETENTION seconds, default
   5) has passed.
3. `GET /cluster/replicas/check` on the whole corpus (GCIDE by default, 126,240 entries, on
   one shard): each leaf's peak RSS (VmHWM) before and after, and the check's time.
Prints a Markdown table (also OUT_DIR/log-growth.md).
"""
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

S, OUT = sys.argv[1], sys.argv[2]
CORPUS = sys.argv[3] if len(sys.argv) > 3 else "../shared/corpora/gcide-dictionary.jsonl.gz"
RETENTION = os.environ.get("RETENTION", "5")
ROOT, LEAVES = 18290, (17291, 17292)
BASE = f"http://127.0.0.1:{ROOT}"
os.makedirs(OUT, exist_ok=True)


def call(method, path, body=None, ctype="application/x-ndjson"):
    req = urllib.request.Request(BASE + path, data=body, method=method)
    if body is not None:
        req.add_header("content-type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def log_bytes(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.startswith("scatter-versions"))


def status(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def state():
    _, c = call("GET", "/cluster")
    return [r["state"] for r in c["shards"][0]["replicas"]]


def main():
    build = os.path.join(OUT, "build")
    shutil.rmtree(build, ignore_errors=True)
    subprocess.run([S, "index", "build", "--input", CORPUS, "--out", build, "--shards", "1", "--no-progress"],
                   check=True, capture_output=True)
    dirs = [os.path.join(build, "shard-0"), os.path.join(OUT, "replica-1")]
    shutil.rmtree(dirs[1], ignore_errors=True)
    shutil.copytree(dirs[0], dirs[1])
    procs = [subprocess.Popen([S, "leaf", "--index", d, "--listen", f"127.0.0.1:{p}",
                               "--tombstone-retention-secs", RETENTION],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for d, p in zip(dirs, LEAVES)]
    time.sleep(1)
    shard = ",".join(f"127.0.0.1:{p}" for p in LEAVES)
    procs.append(subprocess.Popen([S, "root", "--listen", f"127.0.0.1:{ROOT}", "--shard", shard,
                                   "--result-cache-mb", "0"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    rows = []
    try:
        for _ in range(200):
            try:
                if call("GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        pad = "lorem ipsum " * 170
        t = time.time()
        for v in range(10_000):
            doc = json.dumps({"id": "one", "title": f"version {v}", "body": pad}) + "\n"
            code, body = call("POST", "/documents", doc.encode())
            assert code == 200, body
        took = time.time() - t
        rows.append(("10,000 versions of one 2 KB document", [log_bytes(d) for d in dirs],
                     [s["versioned"] for s in state()], f"{took:.1f} s, {10_000 / took:.0f} writes/s"))
        rss0 = [status(p.pid, "VmRSS") for p in procs[:2]]
        t = time.time()
        for i in range(10_000):
            code, body = call("DELETE", f"/documents/absent-{i}")
            assert code == 200, body
        took = time.time() - t
        rows.append(("+ 10,000 blind deletes (right after)", [log_bytes(d) for d in dirs],
                     [s["versioned"] for s in state()],
                     f"{took:.1f} s; leaf RSS +{[status(p.pid, 'VmRSS') - r for p, r in zip(procs, rss0)]} KiB"))
        deadline = time.time() + 120
        while time.time() < deadline and any(s["versioned"] > 1 for s in state()):
            time.sleep(1)
        rows.append((f"+ {RETENTION} s retention passed", [log_bytes(d) for d in dirs],
                     [s["versioned"] for s in state()], ""))
        hwm0 = [status(p.pid, "VmHWM") for p in procs[:2]]
        rss0 = [status(p.pid, "VmRSS") for p in procs[:2]]
        t = time.time()
        code, check = call("GET", "/cluster/replicas/check")
        took = time.time() - t
        assert code == 200 and check["consistent"], check
        docs = check["shards"][0]["replicas"][0]["documents"]
        rows.append((f"check-replicas of {docs:,} documents", [], [],
                     f"{took:.1f} s; leaf peak RSS {hwm0} → {[status(p.pid, 'VmHWM') for p in procs[:2]]} KiB"
                     f" (RSS before {rss0})"))
    finally:
        for p in procs:
            p.kill()
    out = ["| step | version log bytes (replica 0, 1) | versioned entries | notes |", "|---|---|---|---|"]
    for name, sizes, versioned, note in rows:
        out.append(f"| {name} | {', '.join(f'{s:,}' for s in sizes)} | {versioned} | {note} |")
    text = "\n".join(out)
    print(text)
    open(os.path.join(OUT, "log-growth.md"), "w").write(text + "\n")


if __name__ == "__main__":
    main()
