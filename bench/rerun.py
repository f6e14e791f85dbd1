#!/usr/bin/env python3
"""Re-run cost: archive about N items from the sandbox, then run again with nothing changed.

A re-run of an up-to-date archive should list and plan, fetch nothing, and take a small
fraction of the first run. Records are Spectrum contents (originals only: one item each; a
fifth of them are inactive and archived as metadata only), so N items need 1.25 N records.

    python bench/rerun.py [--items 100000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from assetvault.sandbox import DatasetConfig, SandboxThread

TOKEN = "sandbox-spectrum-token"
PER_ORG = 10_000


def timed_run(manifest: Path) -> tuple[float, int]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "assetvault", "run", str(manifest), "-q"],
                          check=False, timeout=7200)
    return time.monotonic() - started, proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100_000)
    args = ap.parse_args()
    records = int(args.items * 1.25)
    orgs = max(1, -(-records // PER_ORG))
    config = DatasetConfig(organizations=orgs, assets_per_org=min(records, PER_ORG), products=0,
                           beers=0, spectrum_limit=0, file_size_min=1_000, file_size_max=4_000)
    with SandboxThread(config) as box, tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        job = {"name": "rerun", "source": "spectrum", "base_url": box.api_url, "token": TOKEN,
               "client": "carhartt", "organizations": box.dataset.organization_ids(),
               "include": ["original"], "page_size": 1000, "rate_limit": 0,
               "concurrency": 16, "per_host": 16}
        manifest = Path(tmp) / "jobs.yaml"
        manifest.write_text(json.dumps({"version": 1, "archive": "archive", "jobs": [job]}))
        first, code1 = timed_run(manifest)
        fetched_first = sum(n for p, n in box.counts.items() if not p.startswith("/api/"))
        box.reset_counts()
        second, code2 = timed_run(manifest)
        listing = sum(n for p, n in box.counts.items() if p.startswith("/api/"))
        files = sum(n for p, n in box.counts.items() if not p.startswith("/api/"))
    print("| run | seconds | exit | listing requests | file requests |")
    print("|---|---|---|---|---|")
    print(f"| first | {first:.1f} | {code1} | - | {fetched_first:,} |")
    print(f"| re-run | {second:.1f} | {code2} | {listing:,} | {files:,} |")
    print(f"\nre-run / first run: {second / first * 100:.1f}% ({records:,} records, "
          f"{fetched_first:,} files)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
