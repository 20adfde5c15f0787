#!/usr/bin/env python3
"""Adds numeric, date and keyword fields to the bundled Debian sample, from Debian's own archive.

Every value is real: it comes from the `Packages` index of Debian 12 (bookworm, main, amd64) as
apt keeps it (`/var/lib/apt/lists/*bookworm_main_binary-amd64_Packages*`, decompressed with
`/usr/lib/apt/apt-helper cat-file`).

  installed_size        Installed-Size (KiB)
  download_size         Size of the .deb (bytes)
  dependencies          entries in Depends + Pre-Depends
  reverse_dependencies  packages of the whole archive (63,440) whose Depends/Pre-Depends name
                        this one: a popularity measure that needs no popcon download
  priority, architecture
  version_date          the date an upstream snapshot version names (YYYYMMDD in the version,
                        e.g. 0~git20230105-1), as RFC 3339; absent when the version names none

Usage: enrich-debian.py PACKAGES SAMPLE.jsonl.gz OUT.jsonl.gz
"""
import datetime
import gzip
import json
import re
import sys


def stanzas(path):
    with open(path, encoding="utf-8") as f:
        block = {}
        last = None
        for line in f:
            line = line.rstrip("\n")
            if not line:
                if block:
                    yield block
                block, last = {}, None
            elif line[0] in " \t" and last:
                block[last] += " " + line.strip()
            else:
                key, _, value = line.partition(":")
                block[key] = value.strip()
                last = key
        if block:
            yield block


def names(field):
    out = []
    for alt in field.split(","):
        alt = alt.strip()
        if alt:
            out.append(re.split(r"[\s(:|]", alt, maxsplit=1)[0])
    return out


def version_date(version):
    for m in re.finditer(r"(?<!\d)((?:19|20)\d{2})(\d{2})(\d{2})(?!\d)", version):
        try:
            d = datetime.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            continue
        return d.isoformat() + "T00:00:00Z"
    return None


def main(packages, sample, out):
    index = {}
    rdeps = {}
    for s in stanzas(packages):
        deps = names(s.get("Depends", "")) + names(s.get("Pre-Depends", ""))
        index.setdefault(s["Package"], (s, deps))
        for d in set(deps):
            rdeps[d] = rdeps.get(d, 0) + 1
    with gzip.open(sample, "rt", encoding="utf-8") as f, gzip.open(out, "wt", encoding="utf-8") as w:
        for line in f:
            doc = json.loads(line)
            if doc["id"] not in index:  # not built for amd64: the fields stay absent
                w.write(json.dumps(doc, ensure_ascii=False) + "\n")
                continue
            s, deps = index[doc["id"]]
            doc["installed_size"] = int(s.get("Installed-Size", "0"))
            doc["download_size"] = int(s.get("Size", "0"))
            doc["dependencies"] = len(deps)
            doc["reverse_dependencies"] = rdeps.get(doc["id"], 0)
            doc["priority"] = s.get("Priority", "optional")
            doc["architecture"] = s.get("Architecture", "all")
            date = version_date(doc["version"])
            if date:
                doc["version_date"] = date
            w.write(json.dumps(doc, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])
