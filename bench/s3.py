#!/usr/bin/env python3
"""assetvault against rclone into an object store, in one run on this machine (issue #12).

The mixed and large corpora of ../shared/bench, served by the private nginx on 127.0.0.1:18080,
copied into a SeaweedFS bucket (one ``weed mini`` for the whole run, tests/seaweed.py, on free
loopback ports; a fresh bucket for every run of every tool):

* assetvault: a ``urls`` job over a CSV ``url,path`` (as compare.py), concurrency 16,
  ``archive: s3://BUCKET/av``, a fresh ``--state-dir`` per run. It hashes SHA-256 of every byte,
  keeps its state database and journal, and seals a BagIt bag in the bucket; each object carries
  its sha256 as metadata.
* rclone: ``rclone copy :http,url=http://127.0.0.1:18080/SET/: :s3,provider=SeaweedFS,...:BUCKET/rc
  --transfers 16 --checkers 16``, rclone's defaults otherwise (the keys come from
  RCLONE_S3_ACCESS_KEY_ID / RCLONE_S3_SECRET_ACCESS_KEY, never on the command line).

Tools alternate run by run after one untimed warm-up each; medians of ``--runs``. Measured with
../shared/bench/measure.py (as compare.py): wall, CPU of the tool and every child it waited for,
peak RSS of its largest process, nginx CPU; plus the CPU seconds ``weed mini`` gained during the
run (utime+stime from /proc). Verified: after every run the bucket is listed (object count and
bytes of the set's files); after the last run of each tool every object is downloaded and its
SHA-256 compared with ``/tmp/bench/lists/SET.sha256`` (and, for assetvault, with the sha256 in
its metadata).

    python bench/s3.py [--sets mixed,large] [--tools assetvault,rclone] [--runs 3] [--setup]
    python bench/s3.py --sets mixed --tools assetvault,assetvault-w1,assetvault-w2  # scaling
                       [--variant NAME:VAR=VALUE[,VAR=VALUE] ...]
    python bench/s3.py --sets large --upstream-limit 100  # an upstream at 100 MiB/s

``--variant`` adds an assetvault run with environment variables set (e.g.
``pool16:PYTHONPATH=/tmp/avsrc`` for a scratch copy of src/ with a change to try, or
``unsigned:AWS_UNSIGNED_PAYLOAD=true``), measured interleaved with the others.
Results: a table on stdout and every run in ``bench/results/s3-DATE.jsonl``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from compare import BASE, ROOT, J, load_measure, precompile, setup  # noqa: E402
from tests.seaweed import SeaweedS3  # noqa: E402

TCK = os.sysconf("SC_CLK_TCK")


def proc_tree_cpu(pid: int) -> float:
    """utime+stime (s) of ``pid`` and every live descendant."""
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / TCK
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo.extend(children.get(p, []))
    return total


UPSTREAM_MIB: list[int] = []  # --upstream-limit: the source's bandwidth, the same for each tool


def assetvault_manifest(name: str, bucket: str) -> Path:
    folder = ROOT / "assetvault-s3"
    folder.mkdir(parents=True, exist_ok=True)
    urls = (ROOT / "lists" / f"{name}.urls").read_text().split()
    csv = folder / f"{name}.csv"
    csv.write_text("url,path\n" + "".join(f"{u},{u.rsplit('/', 1)[1]}\n" for u in urls))
    manifest = folder / f"{bucket}.yaml"
    manifest.write_text(json.dumps({
        "version": 1, "archive": f"s3://{bucket}/av",
        "defaults": {"concurrency": J, "per_host": J,
                     **({"bandwidth": f"{UPSTREAM_MIB[0]}MiB"} if UPSTREAM_MIB else {})},
        "jobs": [{"name": "bench", "source": "urls", "urls_file": str(csv)}]}))
    return manifest


def command(tool: str, name: str, bucket: str, endpoint: str) -> tuple[list[str], str, str]:
    """The command line, the prep shell line (untimed), and the key prefix of the set's files."""
    if tool.startswith("rclone"):
        dest = f":s3,provider=SeaweedFS,endpoint='{endpoint}',region=us-east-1:{bucket}/rc"
        copy = ["rclone", "copy", f":http,url='{BASE}/{name}/':", dest,
                "--transfers", str(J), "--checkers", str(J), "-q", "--config", "/dev/null",
                *(["--bwlimit", f"{UPSTREAM_MIB[0]}M"] if UPSTREAM_MIB else [])]
        if tool == "rclone+hashsum":
            # The same work as assetvault's: a SHA-256 of every object. S3 keeps none, so
            # rclone reads each object back (--download), as a user scripting it would.
            sums = ["rclone", "hashsum", "sha256", "--download", dest, "--checkers", str(J),
                    "-q", "--config", "/dev/null"]
            line = f"{shlex.join(copy)} && {shlex.join(sums)} > {hashsum_file(bucket)}"
            return ["sh", "-c", line], "sync", "rc/"
        return copy, "sync", "rc/"
    state = ROOT / "out" / f"s3-state-{tool}"
    exe = str(Path(sys.executable).parent / "assetvault")
    # assetvault-wN: the same run with its downloads in N local Dask worker processes.
    spread = ["--workers", tool.rsplit("-w", 1)[1]] if "-w" in tool else []
    return ([exe, "run", str(assetvault_manifest(name, bucket)), "-q", "--state-dir", str(state),
             "--report", str(report_file(bucket)), *spread],
            f"rm -rf '{state}' && sync", "av/data/urls/bench/")


def hashsum_file(bucket: str) -> Path:
    return ROOT / "out" / f"sha256-{bucket}.txt"


def check_hashsum(bucket: str, name: str) -> str:
    """rclone hashsum's list must be the corpus's, file for file."""
    lines = hashsum_file(bucket).read_text().splitlines()
    got = {line.split()[1]: line.split()[0] for line in lines if line.strip()}
    return "ok" if got == expected(name) else f"FAILED: {len(got)} sums, not the corpus's"


def report_file(bucket: str) -> Path:
    return ROOT / "out" / f"report-{bucket}.json"


def worker_cpu(bucket: str) -> float | None:
    """CPU seconds the run's Dask workers spent (from its report), None for an in-process run."""
    try:
        workers = json.loads(report_file(bucket).read_text()).get("workers")
    except (OSError, ValueError):
        return None
    return None if workers is None else sum(w["cpu_seconds"] for w in workers)


def listing(store: Any, prefix: str) -> dict[str, int]:
    import obstore

    found: dict[str, int] = {}
    for batch in obstore.list(store, prefix, chunk_size=1000):
        for meta in batch:
            found[meta["path"]] = int(meta["size"])
    return found


def expected(name: str) -> dict[str, str]:
    lines = (ROOT / "lists" / f"{name}.sha256").read_text().splitlines()
    return {line.split()[1]: line.split()[0] for line in lines if line.strip()}


def check_count(store: Any, prefix: str, name: str) -> str:
    want = expected(name)
    found = listing(store, prefix)
    names = {k[len(prefix):] for k in found}
    size = sum(found.values())
    if names != set(want) or size != int((ROOT / "lists" / f"{name}.bytes").read_text()):
        return f"FAILED: {len(names)} objects, {size} bytes (missing {len(set(want) - names)})"
    return "ok"


def check_content(store: Any, prefix: str, name: str, metadata: bool) -> str:
    """Download every object of the set and compare its SHA-256 with the reference list."""
    import obstore

    want = expected(name)
    bad = []
    for base, digest in want.items():
        try:
            result = obstore.get(store, prefix + base)
        except FileNotFoundError:
            bad.append(base + " (missing)")
            continue
        h = hashlib.sha256()
        for block in result.stream(min_chunk_size=1 << 20):
            h.update(block)
        if h.hexdigest() != digest:
            bad.append(base)
        elif metadata and result.attributes.get("sha256") != digest:
            bad.append(base + " (metadata)")
    return "ok" if not bad else f"FAILED: {len(bad)} differ, e.g. {bad[:3]}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="mixed,large")
    ap.add_argument("--tools", default="assetvault,rclone")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--setup", action="store_true")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:VAR=VALUE[,VAR=VALUE]")
    ap.add_argument("--keep", action="store_true", help="keep each run's bucket")
    ap.add_argument("--upstream-limit", type=int, metavar="MIB",
                    help="cap the download from nginx at MIB MiB/s (assetvault's bandwidth, "
                         "rclone's --bwlimit): an upstream slower than the store")
    args = ap.parse_args()
    if args.upstream_limit:
        UPSTREAM_MIB.append(args.upstream_limit)
    if args.setup:
        setup()
    from obstore.store import S3Store

    measure = load_measure()
    nginx_pid = int((ROOT / "run/nginx.pid").read_text())
    try:
        os.kill(nginx_pid, 0)
    except OSError:
        raise SystemExit(f"nginx (pid {nginx_pid}) is not running: --setup starts it") from None
    tools = args.tools.split(",")
    variants = {v.split(":", 1)[0]: dict(kv.split("=", 1) for kv in v.split(":", 1)[1].split(","))
                for v in args.variant}
    tools += list(variants)
    precompile(variants)
    results = HERE / "results" / f"s3-{time.strftime('%Y-%m-%d')}.jsonl"
    results.parent.mkdir(exist_ok=True)
    log = str(ROOT / "logs" / "s3.log")
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    weed_dir = ROOT / "seaweed"
    shutil.rmtree(weed_dir, ignore_errors=True)
    table: dict[tuple[str, str], list[dict[str, Any]]] = {}
    base_env = dict(os.environ)
    with SeaweedS3(weed_dir) as server:
        assert server._proc is not None
        weed_pid = server._proc.pid
        os.environ.update(server.env())
        # This machine sets AWS_CA_BUNDLE; rclone's AWS SDK then refuses to build a client
        # (LoadCustomCABundleError) even for an http:// endpoint. Unset for both tools.
        os.environ.pop("AWS_CA_BUNDLE", None)
        os.environ.update(RCLONE_S3_ACCESS_KEY_ID=server.access_key,
                          RCLONE_S3_SECRET_ACCESS_KEY=server.secret_key)
        print(f"weed mini at {server.endpoint} (pid {weed_pid})", file=sys.stderr)
        subprocess.run(f"cat {ROOT}/www/*/* > /dev/null", shell=True, check=False)  # hot cache
        for name in args.sets.split(","):
            files = len((ROOT / "lists" / f"{name}.urls").read_text().split())
            size = int((ROOT / "lists" / f"{name}.bytes").read_text())
            for run in range(args.runs + 1):  # run 0 is the untimed warm-up
                for tool in tools:
                    bucket = re.sub(r"[^a-z0-9-]", "-", f"bench-{name}-{tool}-{run}".lower())
                    server.create_bucket(bucket)
                    cmd, prep, prefix = command(tool, name, bucket, server.endpoint)
                    for var in {v for change in variants.values() for v in change}:
                        if var in base_env:
                            os.environ[var] = base_env[var]
                        else:
                            os.environ.pop(var, None)
                    os.environ.update(variants.get(tool, {}))
                    weed0 = proc_tree_cpu(weed_pid)
                    record = measure.run_once(cmd, prep, log, nginx_pid)
                    record["weed_cpu"] = proc_tree_cpu(weed_pid) - weed0
                    record["worker_cpu"] = worker_cpu(bucket)
                    store = S3Store(bucket, config={
                        "endpoint": server.endpoint, "access_key_id": server.access_key,
                        "secret_access_key": server.secret_key, "region": server.region},
                        client_options={"allow_http": True})
                    record["count"] = check_count(store, prefix, name)
                    if tool == "rclone+hashsum" and record["count"] == "ok":
                        record["count"] = check_hashsum(bucket, name)
                    last = run == args.runs
                    if last:
                        record["content"] = check_content(store, prefix, name,
                                                          metadata=not tool.startswith("rclone"))
                    print(f"{name:6} {tool:11} run {run}: {record['wall']:.2f} s "
                          f"cpu {record['cpu']:.2f} weed {record['weed_cpu']:.2f} "
                          f"rss {record['rss_mib']:.0f} rc={record['rc']} "
                          f"count {record['count']} {record.get('content', '')}",
                          file=sys.stderr, flush=True)
                    if not args.keep:
                        cleanup(store, server, bucket)
                    if run == 0:
                        continue
                    record.update(tool=tool, set=name, files=files, bytes=size, run=run,
                                  cmd=cmd)
                    with results.open("a") as f:
                        f.write(json.dumps(record) + "\n")
                    table.setdefault((name, tool), []).append(record)
    report(table)
    return 0


def cleanup(store: Any, server: SeaweedS3, bucket: str) -> None:
    """Delete the run's objects and its bucket (keeps the server's disk use bounded)."""
    import obstore

    keys = list(listing(store, ""))
    for i in range(0, len(keys), 1000):
        obstore.delete(store, keys[i:i + 1000])
    server.request("DELETE", f"/{bucket}")


def report(table: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
    print("| set | tool | wall s, median [min..max] | rate | CPU s | workers' CPU s | peak RSS MiB "
          "| SeaweedFS CPU s | nginx CPU s | verified | wall / rclone wall |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (name, tool), runs in table.items():
        def med(key: str, rs: list[dict[str, Any]] = runs) -> float:
            return statistics.median(r[key] for r in rs)
        wall = med("wall")
        peer = statistics.median(r["wall"] for r in table[(name, "rclone")]) \
            if (name, "rclone") in table else float("nan")
        ok = all(r["count"] == "ok" and r["rc"] == 0 for r in runs) \
            and runs[-1].get("content") == "ok"
        spread = [r["worker_cpu"] for r in runs if r.get("worker_cpu") is not None]
        workers = f"{statistics.median(spread):.2f}" if spread else ""
        print(f"| {name} | {tool} | {wall:.2f} [{min(r['wall'] for r in runs):.2f}.."
              f"{max(r['wall'] for r in runs):.2f}] | {runs[0]['bytes'] / 1e6 / wall:,.0f} MB/s "
              f"| {med('cpu'):.2f} | {workers} | {med('rss_mib'):.0f} | {med('weed_cpu'):.2f} "
              f"| {med('srv_cpu'):.2f} | {'ok' if ok else 'FAILED'} | {wall / peer:.2f}x |")


if __name__ == "__main__":
    raise SystemExit(main())
