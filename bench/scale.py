#!/usr/bin/env python3
"""Scale: enumerate and plan N items with ``run --dry-run``; peak RSS and items/s.

The sandbox (in this process) serves one Spectrum organization per 10,000 records; the job
keeps originals only, so records = items. The CLI runs as a subprocess under GNU time.

    python bench/scale.py [--items 10000,1000000] [--page-size 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from assetvault.sandbox import DatasetConfig, SandboxThread

TOKEN = "sandbox-spectrum-token"
PER_ORG = 10_000


def dry_run(items: int, page_size: int) -> tuple[float, float, int]:
    """(seconds, peak RSS MiB, items planned) of one dry run."""
    orgs = max(1, items // PER_ORG)
    config = DatasetConfig(organizations=orgs, assets_per_org=min(items, PER_ORG), products=0,
                           beers=0, spectrum_limit=0)
    with SandboxThread(config) as box, tempfile.TemporaryDirectory() as tmp:
        job = {"name": "scale", "source": "spectrum", "base_url": box.api_url, "token": TOKEN,
               "client": "carhartt", "organizations": box.dataset.organization_ids(),
               "include": ["original"], "page_size": page_size, "rate_limit": 0}
        manifest = Path(tmp) / "jobs.yaml"
        manifest.write_text(json.dumps({"version": 1, "archive": "archive", "jobs": [job]}))
        rss_file = Path(tmp) / "rss"
        started = time.monotonic()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), sys.executable,
                               "-m", "assetvault", "run", str(manifest), "--dry-run"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False,
                              timeout=3600)
        seconds = time.monotonic() - started
        planned = proc.stdout.count(b"\n-> data/") or proc.stdout.count(b"\t-> data/")
        return seconds, int(rss_file.read_text().split()[-1]) / 1024, planned


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", default="10000,1000000")
    ap.add_argument("--page-size", type=int, default=1000)
    args = ap.parse_args()
    if not os.access("/usr/bin/time", os.X_OK):
        print("needs GNU time: apt-get install time", file=sys.stderr)
        return 2
    print("| items | planned | seconds | items/s | peak RSS MiB |")
    print("|---|---|---|---|---|")
    peaks = []
    for n in (int(x) for x in args.items.split(",")):
        seconds, rss, planned = dry_run(n, args.page_size)
        peaks.append(rss)
        print(f"| {n:,} | {planned:,} | {seconds:.1f} | {planned / seconds:,.0f} | {rss:.1f} |",
              flush=True)
    if len(peaks) > 1:
        print(f"\npeak RSS at the largest minus the smallest: {peaks[-1] - peaks[0]:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
