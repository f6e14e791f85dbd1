"""Re-runs after upstream changes that move or keep a file: what lands in data/ and history.

Every run is the real CLI in a subprocess against a small loopback server whose records and
files the test rewrites between runs; the archive, its state database and its bag are read,
never mocked.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import bagit  # type: ignore[import-untyped]
import pytest

from .conftest import run_cli, write_manifest

ORG = "o"
LISTING = f"/api/assets/saved/client/c/organization/{ORG}"
ASSETS = "/products/1/assets.json"
SERVER_TIMEOUT = 10.0
WAIT = 30.0
SPECTRUM_DIR = f"spectrum/c/{ORG}/1"
ONPREMISE_DIR = "onpremise/products/1/10"


class Upstream(ThreadingHTTPServer):
    """A Spectrum organization and an OnPremise product whose records and files the test
    sets; every request is counted by path."""

    daemon_threads = True
    records: list[dict[str, Any]]
    assets: list[dict[str, Any]]
    files: dict[str, bytes]
    hits: Counter[str]
    held: dict[str, threading.Event]  # a file whose body stops half-way until its event is set

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def file_hits(self) -> dict[str, int]:
        return {p: n for p, n in self.hits.items() if p in self.files}


class Handler(BaseHTTPRequestHandler):
    server: Upstream

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self.server.hits[path] += 1
        if path == LISTING:
            envelope = {"lastModification": None, "error": None, "apiVersion": "3",
                        "hash": "", "contents": self.server.records}
            self._send(json.dumps(envelope).encode(), "application/json")
        elif path == ASSETS:
            self._send(json.dumps(self.server.assets).encode(), "application/json")
        elif path in self.server.files:
            self._send(self.server.files[path], "application/octet-stream",
                       self.server.held.get(path))
        else:
            self.send_error(404)

    def _send(self, body: bytes, content_type: str,
              held: threading.Event | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if held is not None:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            if not held.wait(WAIT):
                return
            body = body[len(body) // 2:]
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream(("127.0.0.1", 0), Handler)
    server.records, server.assets, server.files, server.hits = [], [], {}, Counter()
    server.held = {}
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        for event in server.held.values():
            event.set()
        server.shutdown()
        server.server_close()
        thread.join(SERVER_TIMEOUT)


def spectrum_record(up: Upstream, *, upload: str, modified: str,
                    outputs: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    job = {"id": 7, "reference": "R", "lastModification": modified,
           "result": {"id": 8, "lastModification": modified,
                      "outputs": [{"id": 0, "uri": up.base_url + uri,
                                   "assetFormat": {"extension": uri.rpartition(".")[2]}}
                                  for uri in outputs]}}
    return {"id": 1, "uploadedAssetUri": up.base_url + upload, "active": True,
            "lastModification": modified, "userFacingFileName": "logo",
            "productionJobs": [job] if outputs else None}


def onpremise_asset(up: Upstream, *, original: str, updated: str, size: int) -> dict[str, Any]:
    return {"id": 10, "product_id": 1, "original_url": up.base_url + original,
            "asset_file_size": size, "asset_content_type": "image/jpeg",
            "updated_at": updated, "processed": True, "status": 0, "versions": {}}


def manifest(up: Upstream, tmp_path: Path, *, onpremise: bool = False) -> Path:
    jobs: list[dict[str, Any]] = [
        {"name": "s", "source": "spectrum", "base_url": up.base_url, "token": "tok-layout",
         "client": "c", "organizations": [ORG], "rate_limit": 0, "retries": 0}]
    if onpremise:
        jobs.append({"name": "a", "source": "onpremise", "base_url": up.base_url,
                     "api_key": "key-layout", "products": [1], "rate_limit": 0, "retries": 0})
    return write_manifest(tmp_path, jobs)


def run_ok(path: Path) -> None:
    result = run_cli("run", path, "--no-progress")
    assert result.code == 0, result.out + result.err
    assert "Traceback" not in result.err


def valid(archive: Path) -> None:
    bagit.Bag(str(archive)).validate()
    result = run_cli("verify", archive)
    assert result.code == 0, result.out + result.err


def files_under(root: Path) -> dict[str, bytes]:
    """relative path -> bytes of every file under ``root`` but asset.json ones."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "asset.json"}


def history(archive: Path) -> dict[str, bytes]:
    """The history's files but the asset.json ones (``asset.{when}.{sha}.json``)."""
    return {p: b for p, b in files_under(archive / ".assetvault/history").items()
            if not p.rpartition("/")[2].startswith("asset.")}


def rows(archive: Path) -> dict[str, tuple[str, str, str]]:
    """key -> (url path, status, path) of every file row."""
    db = sqlite3.connect(archive / ".assetvault/state.sqlite")
    try:
        return {k: (urlsplit(u).path, s, p) for k, u, s, p in db.execute(
            "SELECT key, url, status, path FROM items WHERE kind = 'file'")}
    finally:
        db.close()


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


# -- unchanged bytes under a new version --------------------------------------------------------


def test_a_version_bump_with_the_same_bytes_keeps_no_history_copy(upstream: Upstream,
                                                                  tmp_path: Path) -> None:
    up = upstream
    up.files = {"/up/logo.png": b"logo bytes" * 100, "/out/a.PNG": b"png" * 50,
                "/out/a.DST": b"dst v1" * 40}
    up.records = [spectrum_record(up, upload="/up/logo.png", modified="2022-01-01",
                                  outputs=["/out/a.PNG", "/out/a.DST"])]
    path, archive = manifest(up, tmp_path), tmp_path / "archive"
    run_ok(path)
    # Renamed upstream: a new lastModification everywhere; only the DST's bytes change.
    up.records = [spectrum_record(up, upload="/up/logo.png", modified="2023-01-01",
                                  outputs=["/out/a.PNG", "/out/a.DST"])]
    up.records[0]["userFacingFileName"] = "renamed"
    up.files["/out/a.DST"] = b"dst v2" * 40
    up.hits.clear()
    run_ok(path)
    assert up.file_hits() == {"/up/logo.png": 1, "/out/a.PNG": 1, "/out/a.DST": 1}
    kept = history(archive)
    assert sorted(kept.values()) == [b"dst v1" * 40], sorted(kept)  # only what changed
    data = files_under(archive / "data")
    assert data[f"{SPECTRUM_DIR}/original.png"] == b"logo bytes" * 100
    assert data[f"{SPECTRUM_DIR}/jobs/7-R/a.DST"] == b"dst v2" * 40
    # The record's asset.json did change: its old bytes are kept.
    assert list((archive / ".assetvault/history" / SPECTRUM_DIR).glob("asset.*.json"))
    valid(archive)


# -- names two outputs share ----------------------------------------------------------------


def shared_name_record(up: Upstream, outputs: list[str]) -> list[dict[str, Any]]:
    return [spectrum_record(up, upload="/up/logo.png", modified="2022-01-01", outputs=outputs)]


def test_outputs_sharing_a_name_keep_their_paths_when_the_listing_order_changes(
        upstream: Upstream, tmp_path: Path) -> None:
    up = upstream
    up.files = {"/up/logo.png": b"logo", "/p1/same.DST": b"first" * 20,
                "/p2/same.DST": b"second" * 20}
    up.records = shared_name_record(up, ["/p2/same.DST", "/p1/same.DST"])
    path, archive = manifest(up, tmp_path), tmp_path / "archive"
    run_ok(path)
    folder = archive / "data" / SPECTRUM_DIR / "jobs/7-R"
    first = files_under(folder)
    # Not the first listed: the smallest URL has the plain name, so any order gives this.
    assert first["same.DST"] == b"first" * 20, sorted(first)
    up.records = shared_name_record(up, ["/p1/same.DST", "/p2/same.DST"])
    up.hits.clear()
    run_ok(path)
    assert up.file_hits() == {}, "an unchanged output was fetched again"
    assert files_under(folder) == first
    assert history(archive) == {}
    assert {s for _, s, _ in rows(archive).values()} == {"complete"}
    valid(archive)


def test_the_output_archived_under_a_shared_name_keeps_it_when_another_joins(
        upstream: Upstream, tmp_path: Path) -> None:
    up = upstream
    up.files = {"/up/logo.png": b"logo", "/p1/same.DST": b"first" * 20,
                "/p2/same.DST": b"second" * 20}
    up.records = shared_name_record(up, ["/p2/same.DST"])
    path, archive = manifest(up, tmp_path), tmp_path / "archive"
    run_ok(path)
    # A smaller URL with the same name appears, listed first: the state says who was there.
    up.records = shared_name_record(up, ["/p1/same.DST", "/p2/same.DST"])
    up.hits.clear()
    run_ok(path)
    assert up.file_hits() == {"/p1/same.DST": 1}
    folder = archive / "data" / SPECTRUM_DIR / "jobs/7-R"
    now = files_under(folder)
    assert now.pop("same.DST") == b"second" * 20
    assert list(now.values()) == [b"first" * 20] and next(iter(now)).startswith("same~"), now
    assert history(archive) == {}
    assert {s for _, s, _ in rows(archive).values()} == {"complete"}
    valid(archive)


# -- an original that changes type ------------------------------------------------------------


def change_types(up: Upstream) -> None:
    """The Spectrum upload .png -> .jpg, the OnPremise original .jpg -> .png, both newer."""
    up.records = [spectrum_record(up, upload="/up/logo-v2.jpg", modified="2025-01-01")]
    up.assets = [onpremise_asset(up, original="/up/label-v2.png", updated="2025-01-01T00:00:00Z",
                                 size=len(up.files["/up/label-v2.png"]))]


def typed_upstream(up: Upstream) -> None:
    up.files = {"/up/logo.png": b"old png" * 30, "/up/logo-v2.jpg": b"new jpg" * 30,
                "/up/label.jpg": b"old label jpg" * 30, "/up/label-v2.png": b"new label" * 30}
    up.records = [spectrum_record(up, upload="/up/logo.png", modified="2022-01-01")]
    up.assets = [onpremise_asset(up, original="/up/label.jpg", updated="2022-01-01T00:00:00Z",
                                 size=len(up.files["/up/label.jpg"]))]


def originals(archive: Path) -> dict[str, bytes]:
    return {p: b for p, b in files_under(archive / "data").items() if "/original" in p}


def archived_then_retyped(up: Upstream, tmp_path: Path, *, onpremise: bool = False
                          ) -> tuple[Path, Path]:
    """The manifest and archive after a first run, then a run once both originals changed
    type upstream."""
    typed_upstream(up)
    path, archive = manifest(up, tmp_path, onpremise=onpremise), tmp_path / "archive"
    run_ok(path)
    change_types(up)
    run_ok(path)
    return path, archive


def test_an_original_that_changes_type_replaces_the_old_file_which_goes_to_history(
        upstream: Upstream, tmp_path: Path) -> None:
    up = upstream
    path, archive = archived_then_retyped(up, tmp_path, onpremise=True)
    # One live original per record: the new one. The old bytes are in the history.
    assert originals(archive) == {f"{SPECTRUM_DIR}/original.jpg": b"new jpg" * 30,
                                  f"{ONPREMISE_DIR}/original.png": b"new label" * 30}
    kept = history(archive)
    assert sorted(kept.values()) == [b"old label jpg" * 30, b"old png" * 30]
    assert {p.rpartition("/")[0] for p in kept} == {SPECTRUM_DIR, ONPREMISE_DIR}
    assert kept[next(p for p in kept if p.startswith(SPECTRUM_DIR))] == b"old png" * 30
    state = rows(archive)
    assert state[f"{SPECTRUM_DIR}/original.png"][1] == "replaced"  # not gone: it was replaced
    assert state[f"{ONPREMISE_DIR}/original.jpg"][1] == "replaced"
    report = json.loads(sorted((archive / ".assetvault/reports").glob("*.json"))[-1]
                        .read_text())
    assert all(job["gone"] == 0 for job in report["jobs"]), report["jobs"]
    valid(archive)
    # Nothing changed upstream: nothing fetched, nothing moved.
    up.hits.clear()
    run_ok(path)
    assert up.file_hits() == {}
    assert len(history(archive)) == 2
    valid(archive)


def test_an_original_that_changes_type_back_is_archived_again_and_the_other_replaced(
        upstream: Upstream, tmp_path: Path) -> None:
    up = upstream
    path, archive = archived_then_retyped(up, tmp_path)
    typed_upstream(up)  # back to the .png, with an older lastModification even
    run_ok(path)
    assert originals(archive) == {f"{SPECTRUM_DIR}/original.png": b"old png" * 30}
    assert sorted(history(archive).values()) == [b"new jpg" * 30, b"old png" * 30]
    state = rows(archive)
    assert state[f"{SPECTRUM_DIR}/original.png"][1] == "complete"
    assert state[f"{SPECTRUM_DIR}/original.jpg"][1] == "replaced"
    valid(archive)


def test_a_run_killed_between_retiring_and_removing_ends_valid_after_the_next(
        upstream: Upstream, tmp_path: Path) -> None:
    """The state a SIGKILL leaves between the commit that takes the old file out of the
    manifest and its removal from data/ (the row RETIRING, the file still there): the next
    run removes it before it seals."""
    up = upstream
    path, archive = archived_then_retyped(up, tmp_path)
    old = archive / "data" / SPECTRUM_DIR / "original.png"
    assert not old.exists()
    old.write_bytes(b"old png" * 30)
    db = sqlite3.connect(archive / ".assetvault/state.sqlite")
    with db:
        db.execute("UPDATE items SET status = 'retiring' WHERE key = ?",
                   (f"{SPECTRUM_DIR}/original.png",))
        db.execute("DELETE FROM meta WHERE name = 'sealed'")  # cleared in that commit
    db.close()
    with pytest.raises(bagit.BagValidationError):  # the file the manifest leaves out
        bagit.Bag(str(archive)).validate()
    up.hits.clear()
    run_ok(path)
    assert up.file_hits() == {}
    assert not old.exists()
    assert rows(archive)[f"{SPECTRUM_DIR}/original.png"][1] == "replaced"
    assert sorted(history(archive).values()) == [b"old png" * 30]
    valid(archive)


def test_a_run_killed_after_placing_the_new_original_retires_the_old_one_next_time(
        upstream: Upstream, tmp_path: Path) -> None:
    """SIGKILL once the new original is recorded, while another record's file is still
    coming: no finish ran, so the next run (which finds the new original up to date) must
    still take the old one out of data/."""
    up = upstream
    typed_upstream(up)
    up.files["/up/other.bin"] = b"other" * 200_000
    second = spectrum_record(up, upload="/up/other.bin", modified="2022-01-01")
    path, archive = manifest(up, tmp_path), tmp_path / "archive"
    run_ok(path)  # without the other record
    change_types(up)
    up.records.append({**second, "id": 2})
    up.held["/up/other.bin"] = threading.Event()
    proc = subprocess.Popen([sys.executable, "-m", "assetvault", "run", str(path),
                             "--no-progress"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + WAIT
        while rows(archive).get(f"{SPECTRUM_DIR}/original.jpg", ("", "", ""))[1] != "complete":
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the new original was never recorded"
            time.sleep(0.02)
        assert up.hits["/up/other.bin"] == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=WAIT)
    assert (archive / "data" / SPECTRUM_DIR / "original.png").exists()  # no finish ran
    up.held["/up/other.bin"].set()
    up.hits.clear()
    run_ok(path)
    assert "/up/logo-v2.jpg" not in up.file_hits()  # up to date: nothing fetched twice
    assert {p: b for p, b in originals(archive).items() if p.startswith(SPECTRUM_DIR + "/")
            } == {f"{SPECTRUM_DIR}/original.jpg": b"new jpg" * 30}
    assert sorted(history(archive).values()) == [b"old png" * 30]
    assert rows(archive)[f"{SPECTRUM_DIR}/original.png"][1] == "replaced"
    valid(archive)
