#!/usr/bin/env python3
"""assetvault against the downloaders a user would pick instead, in one run on this machine.

Uses ../shared/bench (corpus, private nginx on 127.0.0.1:18080, the ``measure.py`` timer).
assetvault runs a ``urls`` job over a CSV ``url,path`` of the same lists, concurrency 16,
with SHA-256, state and the bag on, exactly as a user would. Tools alternate run by run (so
the machine's drift hits every tool alike), after one untimed warm-up each; every output is
checked with ``sha256sum -c`` afterwards.

    python bench/compare.py [--sets small,mixed,large] [--tools assetvault,curl,rclone]
                            [--runs 3] [--setup]

``--setup`` installs nginx, curl, rclone and GNU time with apt-get when missing (root), builds
the corpus and starts nginx. Results: a table on stdout and every run in
``bench/results/compare-DATE.jsonl``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "bench"
ROOT = Path(os.environ.get("BENCH_ROOT", "/tmp/bench"))
BASE = f"http://127.0.0.1:{os.environ.get('BENCH_PORT', '18080')}"
J = 16


def load_measure() -> Any:
    spec = importlib.util.spec_from_file_location("measure", SHARED / "measure.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def setup() -> None:
    missing = [p for p, exe in (("nginx", "nginx"), ("curl", "curl"), ("rclone", "rclone"),
                                ("time", "/usr/bin/time")) if shutil.which(exe) is None]
    if missing:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True)
    env = {**os.environ, "BENCH_ROOT": str(ROOT)}
    subprocess.run([str(SHARED / "make_corpus.sh")], check=True, env=env)
    subprocess.run([str(SHARED / "serve.sh")], check=True, env=env)


def assetvault_manifest(name: str) -> Path:
    """A urls job over the set's list, as CSV url,path (path = the file's name)."""
    folder = ROOT / "assetvault"
    folder.mkdir(parents=True, exist_ok=True)
    urls = (ROOT / "lists" / f"{name}.urls").read_text().split()
    csv = folder / f"{name}.csv"
    csv.write_text("url,path\n" + "".join(f"{u},{u.rsplit('/', 1)[1]}\n" for u in urls))
    manifest = folder / f"{name}.yaml"
    manifest.write_text(json.dumps({
        "version": 1, "archive": str(ROOT / "out" / f"assetvault-{name}"),
        "defaults": {"concurrency": J, "per_host": J},
        "jobs": [{"name": "bench", "source": "urls", "urls_file": str(csv)}]}))
    return manifest


def command(tool: str, name: str, out: Path) -> tuple[list[str], Path]:
    """The command line of a tool, and the folder where the set's files end up."""
    lists = ROOT / "lists"
    if tool == "assetvault":
        exe = str(Path(sys.executable).parent / "assetvault")
        return [exe, "run", str(assetvault_manifest(name)), "-q"], out / "data/urls/bench"
    if tool == "curl":
        return ["curl", "--parallel", "--parallel-max", str(J), "-Z", "--no-progress-meter",
                "--fail", "-K", str(lists / f"{name}.curlcfg"), "--output-dir", str(out)], out
    if tool == "rclone":
        return ["rclone", "copy", ":http:", str(out), "--http-url", f"{BASE}/{name}/",
                "--transfers", str(J), "--checkers", str(J), "-q", "--config", "/dev/null"], out
    raise SystemExit(f"unknown tool {tool}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="small,mixed,large")
    ap.add_argument("--tools", default="assetvault,curl,rclone")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--setup", action="store_true")
    args = ap.parse_args()
    if args.setup:
        setup()
    measure = load_measure()
    server_pid = int((ROOT / "run/nginx.pid").read_text())
    tools = args.tools.split(",")
    results = HERE / "results" / f"compare-{time.strftime('%Y-%m-%d')}.jsonl"
    results.parent.mkdir(exist_ok=True)
    log = str(ROOT / "logs" / "compare.log")
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(f"cat {ROOT}/www/*/* > /dev/null", shell=True, check=False)  # hot cache
    table: dict[tuple[str, str], list[dict[str, float]]] = {}
    for name in args.sets.split(","):
        files = len((ROOT / "lists" / f"{name}.urls").read_text().split())
        size = int((ROOT / "lists" / f"{name}.bytes").read_text())
        for run in range(args.runs + 1):  # run 0 is the untimed warm-up
            for tool in tools:
                out = ROOT / "out" / f"{tool}-{name}"
                cmd, landed = command(tool, name, out)
                prep = f"rm -rf '{out}' && mkdir -p '{out}' && sync"
                record = measure.run_once(cmd, prep, log, server_pid)
                if run == 0:
                    continue
                record.update(tool=tool, set=name, files=files, bytes=size, run=run)
                with results.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                table.setdefault((name, tool), []).append(record)
                print(f"{name:6} {tool:11} run {run}: {record['wall']:.2f} s  rc={record['rc']}",
                      file=sys.stderr, flush=True)
            if run == args.runs:
                for tool in tools:
                    _, landed = command(tool, name, ROOT / "out" / f"{tool}-{name}")
                    check = subprocess.run(
                        f"cd '{landed}' && sha256sum -c --quiet '{ROOT}/lists/{name}.sha256' && "
                        f"test $(ls -A . | wc -l) -eq {files}", shell=True, check=False)
                    table[(name, tool)][-1]["verified"] = float(check.returncode == 0)
    report(table, tools)
    return 0


def report(table: dict[tuple[str, str], list[dict[str, float]]], tools: list[str]) -> None:
    print("| set | tool | wall s, median [min..max] | rate | CPU s | peak RSS MiB | verified "
          "| assetvault faster by |")
    print("|---|---|---|---|---|---|---|---|")
    for (name, tool), runs in table.items():
        wall = statistics.median(r["wall"] for r in runs)
        ours = statistics.median(r["wall"] for r in table[(name, "assetvault")]) \
            if (name, "assetvault") in table else float("nan")
        first = runs[0]
        rate = (f"{first['files'] / wall:,.0f} files/s" if name == "small"
                else f"{first['bytes'] / 1e6 / wall:,.0f} MB/s")
        cpu = statistics.median(r["cpu"] for r in runs)
        rss = statistics.median(r["rss_mib"] for r in runs)
        ok = "ok" if runs[-1].get("verified") else "FAILED"
        ratio = "" if tool == "assetvault" else f"{wall / ours:.2f}x"
        print(f"| {name} | {tool} | {wall:.2f} [{min(r['wall'] for r in runs):.2f}.."
              f"{max(r['wall'] for r in runs):.2f}] | {rate} | {cpu:.2f} | {rss:.0f} | {ok} "
              f"| {ratio} |")


if __name__ == "__main__":
    raise SystemExit(main())
