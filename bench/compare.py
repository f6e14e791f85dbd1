#!/usr/bin/env python3
"""assetvault against the tools a user would pick instead, in one run on this machine.

Uses ../shared/bench (corpus, private nginx on 127.0.0.1:18080, the ``measure.py`` timer).
assetvault runs a ``urls`` job over a CSV ``url,path`` of the same lists, concurrency 16,
with SHA-256, state and the bag on, exactly as a user would. Tools alternate run by run (so
the machine's drift hits every tool alike; the order turns by one each round, so no tool always
follows the same one), after one untimed warm-up each; every output is checked against the
corpus's SHA-256 list afterwards.

Peers:
- raw (download only, nothing hashed): ``curl`` (``-Z --parallel-max 16``), ``rclone``
  (``copy :http:``, 16 transfers);
- equal work (a verified, SHA-256-manifested copy, what a user would script):
  ``curl+bagit`` = curl as above, then ``bagit.py --sha256 --processes 2`` over the result
  (a BagIt bag, as assetvault writes); ``rclone+hashsum`` = rclone as above, then
  ``rclone hashsum sha256`` of the result into a list beside it.

    python bench/compare.py [--sets small,mixed,large]
                            [--tools assetvault,curl+bagit,rclone+hashsum,curl,rclone]
                            [--runs 3] [--setup] [--variant NAME:VAR=VALUE[,VAR=VALUE] ...]

``--variant`` adds an assetvault run with environment variables set (e.g.
``old:PYTHONPATH=/tmp/old/src`` for another version of the code), alternating with the rest;
named in ``--tools`` it takes that place in the order (``assetvault`` itself may be a variant:
a frozen copy of the code, safe from edits to the working tree during a long run).
Every run writes into a folder of its own. A set of many files keeps its outputs until the
set is done: on this machine's ext4 (no journal, so the kernel's ``recently_deleted`` check is
on) a file created within 60 s of many deletions in its block group (6 minutes once new files
dirty the same inode table block) makes the allocator walk every inode freed there (measured:
5,000 files took 4.5-5.3 s to create after a round's ``rm -rf``, 0.3 s in an untouched group;
whichever tool's folder landed in such a group lost, at random). A set of few large files
deletes a round's outputs after the round instead: keeping 29 GB of them on 24 GB of memory
made every run pay the page cache's reclaim. The output root carries ``chattr +T``, so each
run's folder is spread to another block group.
``--setup`` installs nginx, curl, rclone and GNU time with apt-get when missing (root), builds
the corpus and starts nginx. Results: a table on stdout and every run in
``bench/results/compare-DATE.jsonl``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
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
BIN = Path(sys.executable).parent
TOOLS = "assetvault,curl+bagit,rclone+hashsum,curl,rclone"
EQUAL_WORK = ("curl+bagit", "rclone+hashsum")
MANY_FILES = 2_000  # a set's outputs kept to its end from this many files a run
Table = dict[tuple[str, str], list[dict[str, Any]]]


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
    if shutil.which("bagit.py", path=str(BIN)) is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "bagit"], check=True)
    env = {**os.environ, "BENCH_ROOT": str(ROOT)}
    subprocess.run([str(SHARED / "make_corpus.sh")], check=True, env=env)
    subprocess.run([str(SHARED / "serve.sh")], check=True, env=env)


def precompile(variants: dict[str, dict[str, str]]) -> None:
    """Byte-compile assetvault's sources (and each variant's), as ``pip install`` does: this
    machine sets PYTHONDONTWRITEBYTECODE, so an editable install would compile its ~110
    modules again on every run (0.2 s a run, measured) where a user's install never does."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    paths = [str(HERE.parent / "src"), *(p for v in variants.values()
                                         for p in v.get("PYTHONPATH", "").split(":") if p)]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *paths], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def assetvault_manifest(name: str, archive: Path) -> Path:
    """A urls job over the set's list, as CSV url,path (path = the file's name)."""
    folder = ROOT / "assetvault"
    folder.mkdir(parents=True, exist_ok=True)
    urls = (ROOT / "lists" / f"{name}.urls").read_text().split()
    csv = folder / f"{name}.csv"
    csv.write_text("url,path\n" + "".join(f"{u},{u.rsplit('/', 1)[1]}\n" for u in urls))
    manifest = folder / f"{archive.name}.yaml"
    manifest.write_text(json.dumps({
        "version": 1, "archive": str(archive),
        "defaults": {"concurrency": J, "per_host": J},
        "jobs": [{"name": "bench", "source": "urls", "urls_file": str(csv)}]}))
    return manifest


def _curl(name: str, out: Path) -> list[str]:
    return ["curl", "--parallel", "--parallel-max", str(J), "-Z", "--no-progress-meter",
            "--fail", "-K", str(ROOT / "lists" / f"{name}.curlcfg"), "--output-dir", str(out)]


def _rclone(name: str, out: Path) -> list[str]:
    return ["rclone", "copy", ":http:", str(out), "--http-url", f"{BASE}/{name}/",
            "--transfers", str(J), "--checkers", str(J), "-q", "--config", "/dev/null"]


def _then(first: list[str], second: list[str], tail: str = "") -> list[str]:
    """Two commands in one timed process tree (the shell waits for both: CPU counts both)."""
    return ["sh", "-c", f"{shlex.join(first)} && {shlex.join(second)}{tail}"]


def command(tool: str, name: str, out: Path) -> tuple[list[str], Path]:
    """The command line of a tool, and the folder where the set's files end up."""
    if tool == "assetvault":
        return ([str(BIN / "assetvault"), "run", str(assetvault_manifest(name, out)), "-q"],
                out / "data/urls/bench")
    if tool == "curl":
        return _curl(name, out), out
    if tool == "rclone":
        return _rclone(name, out), out
    if tool == "curl+bagit":
        bagit = [str(BIN / "bagit.py"), "--sha256", "--processes", "2", "--quiet", str(out)]
        return _then(_curl(name, out), bagit), out / "data"
    if tool == "rclone+hashsum":
        hashsum = ["rclone", "hashsum", "sha256", str(out), "--config", "/dev/null"]
        return _then(_rclone(name, out), hashsum, f" > {shlex.quote(str(out))}.sha256"), out
    raise SystemExit(f"unknown tool {tool}")


def verify(tool: str, name: str, landed: Path, files: int) -> bool:
    """The files are the corpus's (sha256sum -c, count); a peer's own hash list is too."""
    lists = ROOT / "lists"
    check = subprocess.run(
        f"cd '{landed}' && sha256sum -c --quiet '{lists}/{name}.sha256' && "
        f"test $(ls -A . | wc -l) -eq {files}", shell=True, check=False)
    ok = check.returncode == 0
    if tool == "curl+bagit":
        bag = landed.parent
        ok = ok and _same_sums(bag / "manifest-sha256.txt", lists / f"{name}.sha256", "data/")
    elif tool == "rclone+hashsum":
        ok = ok and _same_sums(Path(f"{landed}.sha256"), lists / f"{name}.sha256", "")
    elif tool == "assetvault" or tool not in ("curl", "rclone"):
        ok = ok and _same_sums(landed.parents[2] / "manifest-sha256.txt",
                               lists / f"{name}.sha256", "data/urls/bench/")
    return ok


def _same_sums(listing: Path, reference: Path, prefix: str) -> bool:
    """The tool's own SHA-256 list names every corpus file with the corpus's digest."""
    def pairs(path: Path, strip: str) -> set[tuple[str, str]]:
        out = set()
        for line in path.read_text().splitlines():
            digest, _, file = line.partition(" ")
            out.add((digest.lower(), file.strip().lstrip("*").removeprefix(strip)))
        return out
    try:
        return pairs(listing, prefix) == pairs(reference, "")
    except OSError:
        return False


def set_env(tool: str, variants: dict[str, dict[str, str]], base: dict[str, str]) -> None:
    """The environment of one run: the base one, plus a variant's variables."""
    for var in {v for change in variants.values() for v in change}:
        if var in base:
            os.environ[var] = base[var]
        else:
            os.environ.pop(var, None)
    os.environ.update(variants.get(tool, {}))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="small,mixed,large")
    ap.add_argument("--tools", default=TOOLS)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--setup", action="store_true")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:VAR=VALUE[,VAR=VALUE]")
    args = ap.parse_args()
    if args.setup:
        setup()
    variants = {v.split(":", 1)[0]: dict(kv.split("=", 1) for kv in v.split(":", 1)[1].split(","))
                for v in args.variant}
    tools = args.tools.split(",")
    tools += [v for v in variants if v not in tools]  # a variant may be placed in --tools
    precompile(variants)
    table: Table = {}
    fresh_outputs()
    for name in args.sets.split(","):
        run_set(name, tools, variants, args.runs, table)
    report(table, tools)
    return 0


def fresh_outputs() -> None:
    """Remove every run's output."""
    out = ROOT / "out"
    if out.exists():
        shutil.rmtree(out)
        subprocess.run(["sync"], check=True)
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["chattr", "+T", str(out)], check=False, capture_output=True)


def run_set(name: str, tools: list[str], variants: dict[str, dict[str, str]], runs: int,
            table: Table) -> None:
    """Warm-up, then ``runs`` rounds of every tool in turn; the last round's output verified."""
    measure = load_measure()
    server_pid = int((ROOT / "run/nginx.pid").read_text())
    results = HERE / "results" / f"compare-{time.strftime('%Y-%m-%d')}.jsonl"
    results.parent.mkdir(exist_ok=True)
    log = str(ROOT / "logs" / "compare.log")
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(f"cat {ROOT}/www/{name}/* > /dev/null", shell=True, check=False)  # hot cache
    files = len((ROOT / "lists" / f"{name}.urls").read_text().split())
    size = int((ROOT / "lists" / f"{name}.bytes").read_text())
    base = dict(os.environ)
    for run in range(runs + 1):  # run 0 is the untimed warm-up
        # The order turns by one each round: on this machine a run's cost depends on what ran
        # just before it (memory and page cache handed back), so no tool always follows one.
        for tool in tools[run % len(tools):] + tools[:run % len(tools)]:
            out = ROOT / "out" / f"{tool}-{name}-{run}"
            cmd, landed = command("assetvault" if tool in variants else tool, name, out)
            set_env(tool, variants, base)
            prep = f"mkdir -p '{out}' && sync"
            record = measure.run_once(cmd, prep, log, server_pid)
            set_env("", variants, base)
            if run == 0:
                continue
            record.update(tool=tool, set=name, files=files, bytes=size, run=run)
            if run == runs:
                record["verified"] = verify(tool, name, landed, files)
            with results.open("a") as f:
                f.write(json.dumps(record) + "\n")
            table.setdefault((name, tool), []).append(record)
            print(f"{name:6} {tool:15} run {run}: {record['wall']:.2f} s cpu {record['cpu']:.2f}"
                  f" rss {record['rss_mib']:.0f} rc={record['rc']}", file=sys.stderr, flush=True)
        if files < MANY_FILES:
            fresh_outputs()  # the round's (the last round's were verified as they came)
    fresh_outputs()


def med(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def report(table: Table, tools: list[str]) -> None:
    print("| set | tool | wall s, median [min..max] | rate | CPU s | peak RSS MiB | nginx CPU s "
          "| verified | assetvault wall / this | assetvault CPU / this |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (name, tool), runs in table.items():
        wall, cpu = med(runs, "wall"), med(runs, "cpu")
        ours = table.get((name, "assetvault"))
        rate = (f"{runs[0]['files'] / wall:,.0f} files/s" if name == "small"
                else f"{runs[0]['bytes'] / 1e6 / wall:,.0f} MB/s")
        ok = "ok" if runs[-1].get("verified") and all(r["rc"] == 0 for r in runs) else "FAILED"
        ratios = (f"{med(ours, 'wall') / wall:.2f}x | {med(ours, 'cpu') / cpu:.2f}x"
                  if ours and tool != "assetvault" else " | ")
        print(f"| {name} | {tool} | {wall:.2f} [{min(r['wall'] for r in runs):.2f}.."
              f"{max(r['wall'] for r in runs):.2f}] | {rate} | {cpu:.2f} | "
              f"{med(runs, 'rss_mib'):.0f} | {med(runs, 'srv_cpu'):.2f} | {ok} | {ratios} |")
    targets(table)


def targets(table: Table) -> None:
    """Issue #14's targets: wall <= 0.8x and CPU <= 1.0x the best equal-work pipeline's."""
    print()
    for name in dict.fromkeys(n for n, _ in table):
        peers = [(med(table[(name, t)], "wall"), t) for t in EQUAL_WORK if (name, t) in table]
        ours = table.get((name, "assetvault"))
        if not peers or not ours:
            continue
        wall, best = min(peers)
        w = med(ours, "wall") / wall
        c = med(ours, "cpu") / med(table[(name, best)], "cpu")
        print(f"{name}: best equal-work pipeline {best}; assetvault wall {w:.2f}x "
              f"({'met' if w <= 0.8 else 'NOT met'}, target <= 0.8x), CPU {c:.2f}x "
              f"({'met' if c <= 1.0 else 'NOT met'}, target <= 1.0x)")


if __name__ == "__main__":
    raise SystemExit(main())
