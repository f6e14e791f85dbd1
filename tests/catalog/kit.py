"""A small archive made directly (state rows, payload files, a sealed bag), for catalog tests.

Built without a run so that it can hold what no sandbox serves: broken and hostile files,
HTML in names, a decompression bomb. It is still a valid bag (``write_bag``), so the tests can
check that the catalog leaves it valid.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from assetvault.archive.store import Store
from assetvault.bag.write import PayloadFile, write_bag
from assetvault.storage import LocalStorage

HOSTILE_NAME = "<img src=x onerror=alert(1)>"
HOSTILE_REF = '"><script>alert(2)</script>'
HOSTILE_FILE = "<b onmouseover=alert(3)>bold.png"  # a file name (no "/": names never hold one)
OLD_VERSION = "20260101T000000Z.0123456789abcdef"


def png(colour: tuple[int, int, int] = (200, 40, 40), size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def png_bytes(width: int, height: int, depth: int, colour: int, rows: bytes) -> bytes:
    """A PNG written by hand: any header, any (filtered) rows, fast for many small files."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def bomb_png(side: int = 100_000) -> bytes:
    """A PNG whose header claims side x side pixels (10 G), with almost no data behind it."""
    return png_bytes(side, side, 1, 0, b"\x00" * 64)


def dst(turns: int = 3) -> bytes:
    """A DST of a ring and a square in two threads, written by pyembroidery (12 cm wide)."""
    import math

    import pyembroidery

    pattern = pyembroidery.EmbPattern()
    for i in range(turns * 60 + 1):
        angle = 2 * math.pi * i / 60
        radius = 500 + 40 * (i % 2)
        pattern.add_stitch_absolute(pyembroidery.STITCH, radius * math.cos(angle),
                                    radius * math.sin(angle))
    pattern.add_command(pyembroidery.COLOR_CHANGE)
    for i in range(turns * 48 + 1):  # a square, 50 units a stitch (DST moves <= 121)
        side, step = divmod(i % 48, 12)
        x, y = [(-300 + 50 * step, -300), (300, -300 + 50 * step), (300 - 50 * step, 300),
                (-300, 300 - 50 * step)][side]
        pattern.add_stitch_absolute(pyembroidery.STITCH, x, y)
    pattern.add_command(pyembroidery.END)
    out = io.BytesIO()
    pyembroidery.write_dst(pattern, out)
    return out.getvalue()


def pdf() -> bytes:
    import pypdfium2

    doc = pypdfium2.PdfDocument.new()
    doc.new_page(200, 100)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def make_archive(root: Path, files: dict[str, bytes], docs: dict[str, Any],
                 missing: dict[str, str] | None = None,
                 raw_docs: dict[str, bytes] | None = None) -> Path:
    """An archive at ``root``: ``files`` and ``docs`` (JSON; ``raw_docs`` as given) by key
    under data/, complete; ``missing`` (key -> status) never archived."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / ".assetvault").mkdir(exist_ok=True)
    store = Store(root / ".assetvault" / "state.sqlite")
    docs = {**docs, **(raw_docs or {})}
    payload = {**files, **{k: v if isinstance(v, bytes) else json.dumps(v).encode()
                           for k, v in docs.items()}}
    rows = []
    for key, body in payload.items():
        target = root / "data" / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        kind = "doc" if key in docs else "file"
        rows.append((key, "job", kind, key, len(body), hashlib.sha256(body).hexdigest(),
                     "complete", "downloaded", None))
    for key, status in (missing or {}).items():
        rows.append((key, "job", "file", None, None, None, status, status, f"{status} upstream"))
    db = store._db  # the test writes rows as a run would have
    with db:
        db.executemany("INSERT INTO items (key, job, kind, path, size, sha256, status, outcome, "
                       "error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        db.execute("INSERT INTO runs (started, finished, exit_code, report) VALUES "
                   "('2026-01-01 00:00:00', '2026-01-01 00:01:00', 0, ?)",
                   (json.dumps({"jobs": [{"bytes": sum(map(len, payload.values()))}]}),))
    store.close()
    write_bag(LocalStorage(root), (PayloadFile(PurePosixPath(k), hashlib.sha256(b).hexdigest(),
                                               len(b)) for k, b in sorted(payload.items())),
              agent="catalog tests")
    return root


def hostile_archive(root: Path) -> Path:
    """One organization: a good record, and a hostile one with every kind of bad file."""
    org = "spectrum/carhartt/7000"
    good, bad = f"{org}/1000", f"{org}/1001"
    files = {
        f"{good}/original.png": png(),
        f"{good}/jobs/1-CCG1/CCG1R1.DST": dst(),
        f"{good}/jobs/1-CCG1/CCG1R1.PDF": pdf(),
        f"{bad}/original.png": b"\x89PNG\r\n\x1a\nnot really a png",
        f"{bad}/jobs/2-CCG2/CCG2R1.DST": dst(40)[:512],  # header and a few stitches
        f"{bad}/jobs/2-CCG2/CCG2R1.PDF": b"%PDF-1.7\n1 0 obj <</Type /Catalog>> trailer <<>>",
        f"{bad}/jobs/2-CCG2/bomb.png": bomb_png(),
        f"{bad}/jobs/2-CCG2/{HOSTILE_FILE}": png((20, 20, 200)),
    }
    docs = {
        f"{good}/asset.json": {"id": 1000, "userFacingFileName": "left chest white",
                               "spectrumAssetReference": "CCG1", "active": True,
                               "productionJobs": [{"id": 1, "reference": "CCG1",
                                                   "status": "Complete"}]},
        f"{bad}/asset.json": {"id": 1001, "userFacingFileName": HOSTILE_NAME,
                              "spectrumAssetReference": HOSTILE_REF,
                              "productionJobs": [{"id": 2, "reference": "CCG2"}]},
    }
    make_archive(root, files, docs, {f"{bad}/jobs/2-CCG2/late.DST": "pending",
                                     f"{bad}/jobs/2-CCG2/lost.EMB": "failed"},
                 raw_docs={f"{org}/1002/asset.json": b"[" * 200_000})  # nested past any stack
    old = root / f".assetvault/history/{good}/original.{OLD_VERSION}.png"
    old.parent.mkdir(parents=True)
    old.write_bytes(png((0, 0, 0)))  # the original an upstream change replaced
    return root
