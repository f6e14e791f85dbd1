#!/usr/bin/env python3
"""The catalog of a large archive: build time, peak memory, re-build, and the browser.

Makes a synthetic archive state directly (no run): ``--records`` Spectrum records in
organizations of 50, each with an ``asset.json``, a distinct small PNG original, a DST (one of
``--designs`` distinct designs) and a PDF (one per organization): 4 state rows a record, so
25,000 records are 100,000 items. Then, in this process:

1. a cold build (every distinct file rendered, in worker processes);
2. a re-build (nothing to render);
3. headless Chromium opens ``catalog/index.html``: a probe page loads it in a frame and writes
   the milliseconds from its own start to the frame's load event (a real clock: no virtual
   time budget); and a search by reference across the whole index (``index.html#q=...``,
   scripts run to rest): wall time of ``--dump-dom`` against the same for an empty page.

Peak RSS is this process's (the build's own) and its children's (the renderers') maximum.

``--rows-only`` writes state rows and no files (each record's asset.json row says complete but
its file is absent, its three files are pending): what a build costs in time and memory for
the rows, pages and index alone, e.g. ``--rows-only --records 250000`` for 1,000,000 items.

    python bench/catalog.py [--records 25000] [--designs 1000] [--dir /tmp/catalog-bench]
                            [--rows-only]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from hashlib import sha256
from pathlib import Path

from assetvault.archive.store import Store
from assetvault.catalog import build_catalog
from assetvault.storage import LocalStorage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' archive kit
from tests.catalog.kit import pdf as a_pdf
from tests.catalog.kit import png_bytes

PER_ORG = 50


def tiny_png(n: int) -> bytes:
    """A distinct 8 x 8 PNG for each ``n`` (by hand: 25,000 of them in a second)."""
    pixel = bytes(((n * 37) % 256, (n * 101) % 256, (n >> 8) % 256))
    return png_bytes(8, 8, 8, 2, b"".join(b"\x00" + pixel * 8 for _ in range(8)))


def design(n: int) -> bytes:
    import pyembroidery

    pattern = pyembroidery.EmbPattern()
    for i in range(200):
        a = 2 * math.pi * i / 40
        r = 300 + (n % 97) + 40 * (i % 2)
        pattern.add_stitch_absolute(pyembroidery.STITCH, r * math.cos(a), r * math.sin(a))
        if i == 100:
            pattern.add_command(pyembroidery.COLOR_CHANGE)
    pattern.add_command(pyembroidery.END)
    out = io.BytesIO()
    pyembroidery.write_dst(pattern, out)
    return out.getvalue()


def make(root: Path, records: int, designs: int) -> int:
    """The archive's files and state rows; returns the number of items."""
    (root / ".assetvault").mkdir(parents=True, exist_ok=True)
    store = Store(root / ".assetvault" / "state.sqlite")
    dsts = [design(n) for n in range(designs)]
    pdf = a_pdf()
    rows: list[tuple[object, ...]] = []
    for r in range(records):
        org, content = 7_000_000 + r // PER_ORG, 100_000 + r
        folder = f"spectrum/bench/{org}/{content}"
        ref = f"CCG{content:011d}"
        doc = json.dumps({"id": content, "userFacingFileName": f"logo {r}",
                          "spectrumAssetReference": ref, "organizationIdentifier": str(org),
                          "productionJobs": [{"id": r, "reference": ref}]}).encode()
        for name, body in ((f"{folder}/asset.json", doc), (f"{folder}/original.png", tiny_png(r)),
                           (f"{folder}/jobs/{r}-{ref}/{ref}R1.DST", dsts[r % designs]),
                           (f"{folder}/jobs/{r}-{ref}/{ref}R1.PDF", pdf)):
            target = root / "data" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
            kind = "doc" if name.endswith(".json") else "file"
            rows.append((name, "bench", kind, name, len(body), sha256(body).hexdigest(),
                         "complete", "downloaded", None))
    db = store._db
    with db:
        db.executemany("INSERT INTO items (key, job, kind, path, size, sha256, status, outcome, "
                       "error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        db.execute("INSERT INTO runs (started, finished, exit_code, report) VALUES "
                   "('2026-12-01 00:00:00', '2026-12-01 01:00:00', 0, '{}')")
    store.close()
    return len(rows)


PROBE = """<!DOCTYPE html><title>probe</title><script>var t0 = performance.now();</script>
<iframe src="archive/catalog/index.html" width="1280" height="900"
 onload="document.getElementById('ms').textContent = (performance.now() - t0).toFixed(0)">
</iframe><p id="ms">none</p>"""


def make_rows(root: Path, records: int) -> int:
    """State rows only: per record a complete asset.json row (no file) and 3 pending files."""
    (root / ".assetvault").mkdir(parents=True, exist_ok=True)
    store = Store(root / ".assetvault" / "state.sqlite")
    db = store._db
    with db:
        for start in range(0, records, 10_000):
            rows: list[tuple[object, ...]] = []
            for r in range(start, min(start + 10_000, records)):
                folder = f"spectrum/bench/{7_000_000 + r // PER_ORG}/{100_000 + r}"
                rows.append((f"{folder}/asset.json", "bench", "doc", f"{folder}/asset.json",
                             100, "0" * 64, "complete", "downloaded", None))
                rows += [(f"{folder}/jobs/{r}-R/R{r}.{ext}", "bench", "file", None, None, None,
                          "pending", "pending", "not processed upstream yet")
                         for ext in ("DST", "PNG", "PDF")]
            db.executemany("INSERT INTO items (key, job, kind, path, size, sha256, status, "
                           "outcome, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    store.close()
    return records * 4


def chromium(url: str, *flags: str) -> tuple[float, str]:
    """Wall seconds of one headless Chromium dumping ``url``'s DOM, and the DOM."""
    binary = shutil.which("chromium")
    if binary is None:
        return math.nan, ""
    with tempfile.TemporaryDirectory() as profile:
        started = time.monotonic()
        done = subprocess.run([binary, "--headless", "--disable-gpu", "--no-sandbox",
                               f"--user-data-dir={profile}", *flags, "--dump-dom", url],
                              capture_output=True, text=True, timeout=300, check=True)
        return time.monotonic() - started, done.stdout


def browser(root: Path, records: int) -> None:
    probe = root.parent / "probe.html"
    probe.write_text(PROBE)
    loads = []
    for _ in range(3):
        dom = chromium(probe.as_uri())[1]
        loads.append(int(dom.split('id="ms">')[1].split("<")[0]))
    empty = root.parent / "empty.html"
    empty.write_text("<!DOCTYPE html><title>x</title>")
    budget = "--virtual-time-budget=60000"
    base = min(chromium(empty.as_uri(), budget)[0] for _ in range(3))
    ref = f"CCG{100_000 + records - 1:011d}"
    search, dom = chromium((root / "catalog/index.html").as_uri() + f"#q={ref}", budget)
    print(f"chromium: index.html loaded in {min(loads)} ms (of 3: {loads}); search of {ref} "
          f"over all shards {search - base:.2f} s beyond an empty page's {base:.2f} s "
          f"({'1 found' if '1 found' in dom else 'NOT FOUND'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=25_000)
    parser.add_argument("--designs", type=int, default=1000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/catalog-bench"))
    parser.add_argument("--rows-only", action="store_true")
    args = parser.parse_args()
    root = args.dir / "archive"
    shutil.rmtree(args.dir, ignore_errors=True)
    root.mkdir(parents=True)
    started = time.monotonic()
    items = (make_rows(root, args.records) if args.rows_only
             else make(root, args.records, args.designs))
    print(f"archive: {items:,} items, {args.records:,} records, made in "
          f"{time.monotonic() - started:.1f} s", flush=True)
    storage, database = LocalStorage(root), root / ".assetvault" / "state.sqlite"
    for label in ("cold build", "re-build"):
        result = build_catalog(storage, database)
        print(f"{label}: {result.seconds:.1f} s, {result.rendered:,} rendered, "
              f"{result.reused:,} kept, {result.pages:,} pages", flush=True)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS: build {own:.0f} MiB, a renderer {workers:.0f} MiB")
    browser(root, args.records)


if __name__ == "__main__":
    sys.exit(main())
