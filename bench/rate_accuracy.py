#!/usr/bin/env python3
"""How close does assetvault keep to a rate limit? Measured where it matters: at the server.

For each rate R (default 5, 20, 100 requests/s) it runs the real CLI twice against the
built-in sandbox:

- api:   a spectrum job with ``page_size: 1`` over one organization, so every record is one
         listing request to the API origin, limited by ``rate_limit: R`` (``burst: 1``);
- files: a urls job over the sandbox's files, limited by ``file_rate_limit: R``
         (``file_burst: 1``), concurrency 16.

The achieved rate is (requests - 1) / (last arrival - first arrival), from the sandbox's own
request log, and the worst one-second window is reported next to R + burst.

    python bench/rate_accuracy.py [--rates 5,20,100] [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from assetvault.sandbox import DatasetConfig, SandboxThread

TOKEN = "sandbox-spectrum-token"


def worst_window(times: list[float]) -> int:
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def file_urls(box: SandboxThread, org: str, n: int) -> list[str]:
    request = urllib.request.Request(
        f"{box.api_url}/api/assets/saved/client/carhartt/organization/{org}?page=1&pageSize={n}",
        headers={"SPECTRUM_API_TOKEN": TOKEN})
    with urllib.request.urlopen(request, timeout=30) as resp:
        records = json.load(resp)["contents"]
    return [r["uploadedAssetUri"] for r in records if r.get("uploadedAssetUri")][:n]


def run(manifest: dict[str, object], folder: Path) -> None:
    path = folder / "jobs.yaml"
    path.write_text(json.dumps(manifest))
    subprocess.run([sys.executable, "-m", "assetvault", "run", str(path), "-q"],
                   check=False, timeout=600)


def measure(box: SandboxThread, port: int) -> tuple[int, float, int]:
    times = [r.time for r in box.requests if r.port == port]
    span = max(times) - min(times)
    return len(times), (len(times) - 1) / span if span > 0 else float("inf"), worst_window(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="5,20,100")
    ap.add_argument("--seconds", type=float, default=8.0)
    args = ap.parse_args()
    print("| origin | setting (req/s) | requests | achieved (req/s) | error | worst 1-s window "
          "| rate + burst |")
    print("|---|---|---|---|---|---|---|")
    for rate in (float(r) for r in args.rates.split(",")):
        n = int(rate * args.seconds) + 1
        config = DatasetConfig(organizations=1, assets_per_org=n, products=0, beers=0,
                               spectrum_limit=0, file_size_min=2_000, file_size_max=4_000)
        with SandboxThread(config) as box, tempfile.TemporaryDirectory() as tmp:
            org = box.dataset.organization_ids()[0]
            ports = {"api": int(box.api_url.rsplit(":", 1)[1]),
                     "files": int(box.files_url.rsplit(":", 1)[1])}
            jobs: dict[str, dict[str, object]] = {
                # page_size 1: one listing request per record, all to the API origin
                "api": {"name": "api", "source": "spectrum", "base_url": box.api_url,
                        "token": TOKEN, "client": "carhartt", "organizations": [org],
                        "page_size": 1, "include": ["original"], "rate_limit": rate,
                        "burst": 1},
                "files": {"name": "files", "source": "urls", "urls_file": "urls.txt",
                          "file_rate_limit": rate, "file_burst": 1, "concurrency": 16,
                          "per_host": 16},
            }
            for origin, job in jobs.items():
                folder = Path(tmp) / origin
                folder.mkdir()
                (folder / "urls.txt").write_text("\n".join(file_urls(box, org, n)) + "\n")
                box.reset_counts()
                run({"version": 1, "archive": "archive", "jobs": [job]}, folder)
                count, achieved, window = measure(box, ports[origin])
                error = (achieved - rate) / rate * 100
                print(f"| {origin} | {rate:g} | {count} | {achieved:.2f} | {error:+.1f}% "
                      f"| {window} | {rate + 1:g} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
