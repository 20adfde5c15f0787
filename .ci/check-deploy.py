#!/usr/bin/env python3
"""Offline checks of deploy/kubernetes: schema validation (kubernetes-validate, run by
.ci/run), and the settings the manifests carry, tried with the real binary: the root's
config file starts a root, the schema creates a leaf, and the leaf pod's shell line computes
the shard directories of every pod, which start as one node serving all of them."""

import pathlib
import subprocess
import sys
import tempfile
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
SCATTER = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target" / "debug" / "scatter")


def docs(name):
    return list(yaml.safe_load_all((DEPLOY / name).read_text()))


def starts(args):
    """Starts `scatter ARGS`, waits for its `listening on` line, stops it."""
    proc = subprocess.Popen([SCATTER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("listening on"):
            raise SystemExit(f"scatter {' '.join(args)} did not start: {line}{proc.stderr.read()}")
    finally:
        proc.kill()
        proc.wait()


def main():
    config = docs("configmap.yaml")[0]["data"]
    shards = int(config["NUM_SHARDS"])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        # The Secret `scatter-cluster-tls`, made as the manifests say.
        subprocess.run([SCATTER, "certs", "--out", str(tmp / "certs"), "--nodes", "root,leaf"],
                       check=True, capture_output=True)
        config = {k: v.replace("/etc/scatter-certs", str(tmp / "certs")) for k, v in config.items()}
        (tmp / "root.toml").write_text(config["root.toml"])
        (tmp / "schema.toml").write_text(config["schema.toml"])
        starts(["root", "--config", str(tmp / "root.toml"), "--listen", "127.0.0.1:0"])
        # The root pod's exact command line, its config file in a temporary /etc/scatter
        # (listening on a free loopback port instead of 0.0.0.0:8080).
        etc = tmp / "etc"
        etc.mkdir()
        (etc / "root.toml").write_text(config["root.toml"].replace('"0.0.0.0:8080"', '"127.0.0.1:0"'))
        root = docs("root-deployment.yaml")[0]["spec"]["template"]["spec"]["containers"][0]
        starts([a.replace("/etc/scatter", str(etc)) for a in root["args"]])
        root_shards = tomllib.loads(config["root.toml"])["shard"]
        assert len(root_shards) == shards, f"root lists {len(root_shards)} shards, leaves {shards}"
        leaf = docs("leaf-statefulset.yaml")[0]
        pods = leaf["spec"]["replicas"]
        line = leaf["spec"]["template"]["spec"]["containers"][0]["args"][0]
        for ordinal in range(pods):
            shown = subprocess.run(
                ["sh", "-c", line.replace("exec /usr/local/bin/scatter", "echo")],
                env={"HOSTNAME": f"leaf-{ordinal}", "NUM_SHARDS": str(shards), "PATH": "/usr/bin:/bin"},
                capture_output=True, text=True, check=True).stdout.split()
            dirs = [shown[i + 1] for i, a in enumerate(shown) if a == "--index"]
            assert dirs == [f"/data/shard-{k}" for k in range(shards)], (ordinal, shown)
            pod = f"leaf-{ordinal}.leaf:7070"
            for k in range(shards):
                assert pod in root_shards[k].split(","), f"{pod} is not listed under shard {k}"
            # The pod's own arguments, its volume and config replaced by temporary ones.
            args = [a.replace("/data", str(tmp / f"pod-{ordinal}"))
                    .replace("/etc/scatter-certs", str(tmp / "certs")).replace("/etc/scatter", str(tmp))
                    for a in shown[shown.index("leaf"):]]
            args[args.index("--listen") + 1] = "127.0.0.1:0"
            args[args.index("--metrics-listen") + 1] = "127.0.0.1:0"
            starts(args)
    print(f"deploy: {pods} leaf pods, each a node of {shards} shards; root and leaf settings start the real binary")


if __name__ == "__main__":
    main()
