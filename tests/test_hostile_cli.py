"""SPEC section 10 end to end: the CLI as a user runs it, against the sandbox's hostile modes."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import bagit
from aiohttp import web

from assetvault.net.api import MAX_LISTING_BYTES
from assetvault.sandbox import DatasetConfig, SandboxThread
from assetvault.sandbox.files import read

from .conftest import API_KEY, TOKEN, run_cli, spectrum_job, write_manifest
from .loopback import Loopback

MIB = 1 << 20
# One organization, two records (each: an upload and its outputs), no OnPremise.
SMALL_WORLD = {"organizations": 1, "assets_per_org": 2, "products": 0, "beers": 0}


def _run(tmp: Path, box: SandboxThread, **job: Any) -> tuple[int, str, dict[str, Any]]:
    manifest = write_manifest(tmp, [spectrum_job(box, **job)])
    result = run_cli("run", manifest, "--no-progress", timeout=120)
    assert "Traceback" not in result.err, result.err
    reports = sorted((tmp / "archive/.assetvault/reports").glob("*.json"))
    return result.code, result.err, json.loads(reports[-1].read_text())


def _archived_files(archive: Path) -> dict[str, str]:
    """path -> redacted URL of every complete file (not asset.json) in the state."""
    db = sqlite3.connect(archive / ".assetvault/state.sqlite")
    try:
        rows = db.execute("SELECT path, url FROM items WHERE status = 'complete' "
                          "AND kind = 'file'").fetchall()
    finally:
        db.close()
    return dict(rows)


def test_a_server_splicing_new_versions_onto_resumed_partials(tmp_path: Path) -> None:
    """Every download drops half way; the resumed request gets a *new* version's bytes with a
    206 (If-Range ignored). What lands is one whole version of each file, never a splice."""
    config = DatasetConfig(**SMALL_WORLD, file_size_min=int(1.2 * MIB), file_size_max=2 * MIB)
    faults = "files:truncate@first1,files:change,files:ignore-if-range"
    with SandboxThread(config, faults=faults) as box:
        code, err, report = _run(tmp_path, box, retries=5)
        counts = dict(box.counts)
        dataset = box.dataset
    assert code == 0, (err, report["failures"])
    assert report["jobs"][0]["downloaded"] >= 2
    archive = tmp_path / "archive"
    bagit.Bag(str(archive)).validate()
    whole_versions = set()
    for path, n in counts.items():
        for variant in range(n + 1):
            spec = dataset.file_spec(path, variant)
            if spec is not None:
                whole_versions.add(hashlib.sha256(read(spec, 0, spec.size)).hexdigest())
    files = _archived_files(archive)
    assert len(files) == report["jobs"][0]["downloaded"]
    for path in files:
        digest = hashlib.sha256((archive / "data" / path).read_bytes()).hexdigest()
        assert digest in whole_versions, f"{path} is not one whole upstream version"


def test_a_trickling_file_server_cannot_hang_a_run(tmp_path: Path) -> None:
    """A byte every 0.5 s is progress to an idle timeout of 2 s; min_speed ends it."""
    with SandboxThread(DatasetConfig(**SMALL_WORLD), faults="files:trickle:seconds=0.5") as box:
        code, _, report = _run(tmp_path, box, retries=1, timeout=2)
    assert code == 1
    errors = [f["error"] for f in report["failures"]]
    assert errors and all("min_speed" in e for e in errors)
    bagit.Bag(str(tmp_path / "archive")).validate()


def test_unasked_gzip_is_stored_as_sent(tmp_path: Path) -> None:
    with SandboxThread(DatasetConfig(**SMALL_WORLD), faults="files:gzip") as box:
        code, _, report = _run(tmp_path, box, retries=0)
    archive = tmp_path / "archive"
    files = _archived_files(archive)
    # Blobs whose Content-MD5 covers the file (not the gzip bytes) fail; the rest are kept as
    # the server's own bytes: gzip, never the decoded file.
    assert files, report
    for path in files:
        assert (archive / "data" / path).read_bytes()[:2] == b"\x1f\x8b", path
    assert code in (0, 1)
    bagit.Bag(str(archive)).validate()


def test_link_local_redirects_and_loops_fail_each_file_once(tmp_path: Path) -> None:
    for fault, reason in (("files:linklocal", "link-local"), ("files:redirect-loop", "loop")):
        out = tmp_path / fault.split(":")[1]
        out.mkdir()
        with SandboxThread(DatasetConfig(**SMALL_WORLD), faults=fault) as box:
            code, _, report = _run(out, box, retries=3)
            files = {p: n for p, n in box.counts.items() if not p.startswith("/api/")}
        assert code == 1
        errors = [f["error"] for f in report["failures"]]
        assert errors and all(reason in e for e in errors), errors
        # Refused or detected on the first attempt: one request per file, no retries.
        assert files and set(files.values()) == {1}, files
        assert not _archived_files(out / "archive")


def test_a_retry_after_of_a_day_does_not_hang_the_run(tmp_path: Path) -> None:
    """Past the longest wait assetvault accepts, the origin is not asked again in this run:
    its items fail at once ("run again later") and every other origin goes on."""
    for scope, status in (("files", 429), ("spectrum", 429), ("files", 500)):
        out = tmp_path / f"{scope}-{status}"
        out.mkdir()
        with SandboxThread(DatasetConfig(**SMALL_WORLD),
                           faults=f"{scope}:{status}:retry-after=86400") as box:
            code, _, report = _run(out, box, retries=3)
            counts = dict(box.counts)
        assert code == 1
        errors = [f["error"] for f in report["failures"]]
        assert errors and any("asked to wait 86400 s" in e for e in errors), errors
        asked = sum(n for p, n in counts.items() if (p.startswith("/api/") == (scope != "files")))
        if scope == "spectrum":
            assert asked == 1  # the one listing request; its retry was never sent
        else:
            assert asked >= 1 and all(n == 1 for p, n in counts.items()
                                      if not p.startswith("/api/"))


def test_a_listing_page_past_the_cap_is_a_listing_failure_naming_its_url(
        tmp_path: Path) -> None:
    """Both APIs' listings announce a body four times the cap: refused on the headers, one
    line each naming the page (api_key redacted), exit 1."""
    async def huge(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": str(4 * MAX_LISTING_BYTES)})
        await resp.prepare(request)
        try:
            for _ in range(256):  # at most 16 MiB: the client is gone long before
                await resp.write(b" " * (64 << 10))
        except ConnectionError:
            pass
        return resp

    with Loopback(huge) as server:
        jobs = [{"name": "spec", "source": "spectrum", "base_url": server.url, "token": TOKEN,
                 "client": "c", "organizations": ["o1"], "retries": 1},
                {"name": "onp", "source": "onpremise", "base_url": server.url,
                 "api_key": API_KEY, "products": "all", "retries": 1}]
        result = run_cli("run", write_manifest(tmp_path, jobs), "--no-progress")
        asked = server.paths()
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    failures = [line for line in result.err.splitlines() if line.startswith("failed:")]
    assert len(failures) == 2 and len(asked) == 2, (result.err, asked)  # nothing retried
    spec, onp = sorted(failures, key=lambda line: "onp:" in line)
    assert "/organization/o1?page=1&pageSize=100)" in spec
    assert "/products.json?api_key=***&per_page=100&page=1)" in onp
    for line in failures:
        assert f"over the {MAX_LISTING_BYTES} byte cap" in line
    assert API_KEY not in result.err + result.out and TOKEN not in result.err + result.out
