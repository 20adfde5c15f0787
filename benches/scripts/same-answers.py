#!/usr/bin/env python3
"""Checks that two endpoints return the same top hits (ids) and scores before timing them.

same-answers.py QUERIES N SCATTER_URL TANTIVY_CLI_URL
  SCATTER_URL: a Scatter root (http://127.0.0.1:8081); TANTIVY_CLI_URL: `tantivy serve`
  (http://127.0.0.1:3000). Compares the top 10 of the first N queries: same ids, scores within
  1e-5 relative (ids of equal scores in any order, any of the ids tied at the cut), same hit count. Exits 1 on any mismatch.
"""
import json
import sys
import urllib.parse
import urllib.request


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


def main():
    queries, n, scatter, peer = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    qs = [l.strip() for l in open(queries) if l.strip()][:n]
    bad = 0
    for q in qs:
        e = urllib.parse.quote(q)
        a = get(f"{scatter}/search?size=10&q={e}")
        b = get(f"{peer}/api/?nhits=10&q={e}")
        ha = [(h["id"], h["score"]) for h in a["hits"]]
        hb = [(h["doc"]["id"][0], h["score"]) for h in b["hits"]]
        same = a["total_hits"] == b["num_hits"] and len(ha) == len(hb)
        same = same and all(abs(x[1] - y[1]) <= 1e-5 * max(1.0, abs(y[1])) for x, y in zip(ha, hb))
        # Among documents tied with the last score, either side may keep any of them.
        cut = hb[-1][1] if hb else 0.0
        above = lambda hs: sorted(i for i, s in hs if abs(s - cut) > 1e-5 * max(1.0, abs(cut)))
        same = same and above(ha) == above(hb)
        if not same:
            bad += 1
            if bad <= 5:
                print(f"differs: {q!r}\n  scatter {a['total_hits']} {ha}\n  peer    {b['num_hits']} {hb}")
    print(f"{len(qs) - bad}/{len(qs)} queries: same top 10 ids, scores and hit counts")
    sys.exit(1 if bad else 0)


main()
