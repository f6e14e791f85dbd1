"""Re-runs and the state they keep: seal skipping, rows left alone, gone and back, odd JSON.

Every run is the real CLI in a subprocess against a loopback server (the sandbox, or a small
stdlib server for listings the sandbox cannot produce); the state database is read, never
mocked.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import bagit  # type: ignore[import-untyped]
import pytest

from assetvault.sandbox import DatasetConfig, SandboxThread

from .conftest import onpremise_job, run_cli, spectrum_job, write_manifest

TAG_FILES = ("bagit.txt", "manifest-sha256.txt", "bag-info.txt", "tagmanifest-sha256.txt")
Snapshot = dict[str, tuple[bytes, int]]
ItemRow = tuple[Any, ...]
SERVER_TIMEOUT = 10.0


# -- helpers ---------------------------------------------------------------------------------


def run_ok(manifest: Path) -> None:
    """One ``assetvault run`` that must exit 0 without a traceback (bounded by run_cli)."""
    result = run_cli("run", manifest, "--no-progress")
    assert result.code == 0, result.err
    assert "Traceback" not in result.err


def verify_ok(archive: Path) -> None:
    result = run_cli("verify", archive)
    assert result.code == 0, result.out + result.err
    bagit.Bag(str(archive)).validate()


def tag_snapshot(archive: Path) -> Snapshot:
    """name -> (bytes, mtime_ns) of each of the bag's four tag files."""
    return {name: ((archive / name).read_bytes(), os.stat(archive / name).st_mtime_ns)
            for name in TAG_FILES}


def query(archive: Path, sql: str, params: tuple[object, ...] = ()) -> list[ItemRow]:
    db = sqlite3.connect(archive / ".assetvault/state.sqlite")
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def item_rows(archive: Path) -> dict[str, ItemRow]:
    """key -> the whole items row."""
    return {str(r[0]): r for r in query(archive, "SELECT * FROM items ORDER BY key")}


def statuses(archive: Path) -> dict[str, str]:
    return {str(k): str(s) for k, s in query(archive, "SELECT key, status FROM items")}


def sealed_mark(archive: Path) -> list[ItemRow]:
    return query(archive, "SELECT value FROM meta WHERE name = 'sealed'")


def manifest_entries(archive: Path) -> dict[str, str]:
    """payload path (relative to data/) -> sha256, from manifest-sha256.txt."""
    entries: dict[str, str] = {}
    for line in (archive / "manifest-sha256.txt").read_text().splitlines():
        sha, _, path = line.partition("  ")
        entries[path.removeprefix("data/")] = sha
    return entries


def file_paths_requested(box: SandboxThread) -> dict[str, int]:
    """Requests to anything but the Spectrum listing API, by path."""
    return {p: n for p, n in box.counts.items() if n and not p.startswith("/api/")}


def url_path(box: SandboxThread, url: str) -> str:
    return url.removeprefix(box.files_url).removeprefix(box.api_url).split("?")[0]


def ports(box: SandboxThread) -> tuple[int, int]:
    api, files = urlsplit(box.api_url).port, urlsplit(box.files_url).port
    assert api is not None and files is not None
    return api, files


# -- 1. the seal is skipped when nothing changed ---------------------------------------------


def test_first_run_records_the_seal_in_meta(sandbox: SandboxThread, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, [spectrum_job(sandbox)])
    archive = tmp_path / "archive"
    run_ok(manifest)
    mark = sealed_mark(archive)
    assert len(mark) == 1, mark
    assert str(mark[0][0]).startswith("assetvault"), mark
    agent = (archive / "bag-info.txt").read_text()
    assert f"Bag-Software-Agent: {mark[0][0]}\n" in agent


def test_unchanged_rerun_leaves_every_tag_file_untouched(sandbox: SandboxThread,
                                                          tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, [spectrum_job(sandbox), onpremise_job(sandbox)])
    archive = tmp_path / "archive"
    run_ok(manifest)
    before = tag_snapshot(archive)
    run_ok(manifest)
    after = tag_snapshot(archive)
    for name in TAG_FILES:
        assert after[name][0] == before[name][0], f"{name} was rewritten with other bytes"
        assert after[name][1] == before[name][1], f"{name} was rewritten (mtime_ns moved)"
    assert sealed_mark(archive), "the seal mark was lost by a run that changed nothing"
    verify_ok(archive)


@pytest.mark.parametrize("missing", TAG_FILES)
def test_a_missing_tag_file_is_written_back_by_the_next_run(sandbox: SandboxThread,
                                                           tmp_path: Path,
                                                           missing: str) -> None:
    manifest = write_manifest(tmp_path, [spectrum_job(sandbox)])
    archive = tmp_path / "archive"
    run_ok(manifest)
    payload_manifest = (archive / "manifest-sha256.txt").read_bytes()
    (archive / missing).unlink()
    sandbox.reset_counts()
    run_ok(manifest)
    assert (archive / missing).is_file(), f"{missing} was not written back"
    # Nothing changed in the payload: the manifest says what it said.
    assert (archive / "manifest-sha256.txt").read_bytes() == payload_manifest
    assert not file_paths_requested(sandbox), "a missing tag file made the run fetch files"
    assert sealed_mark(archive)
    verify_ok(archive)


def test_upstream_change_reseals_with_the_new_sha256(sandbox: SandboxThread,
                                                     tmp_path: Path) -> None:
    org = sandbox.dataset.organization_ids()[0]
    manifest = write_manifest(tmp_path, [spectrum_job(sandbox, organizations=[org])])
    archive = tmp_path / "archive"
    run_ok(manifest)
    before = tag_snapshot(archive)
    old_entries = manifest_entries(archive)
    originals = {str(p): str(u) for p, u in query(
        archive, "SELECT path, url FROM items WHERE kind = 'file' AND status = 'complete' "
                 "AND path LIKE '%/original%'")}
    changed = next(cid for cid in sandbox.dataset.content_ids(org)
                   if any(f"/{cid}/" in p for p in originals))
    path, url = next((p, u) for p, u in originals.items() if f"/{changed}/" in p)
    sandbox.dataset.touch_spectrum(org, changed)
    new_sha = hashlib.sha256(sandbox.dataset.file_bytes(url_path(sandbox, url))).hexdigest()
    assert new_sha != old_entries[path], "the sandbox did not change the file"

    run_ok(manifest)
    after = tag_snapshot(archive)
    entries = manifest_entries(archive)
    assert entries[path] == new_sha
    assert hashlib.sha256((archive / "data" / path).read_bytes()).hexdigest() == new_sha
    assert after["manifest-sha256.txt"][0] != before["manifest-sha256.txt"][0]
    assert after["tagmanifest-sha256.txt"][0] != before["tagmanifest-sha256.txt"][0]
    unchanged = {p: s for p, s in old_entries.items() if f"/{changed}/" not in p}
    assert all(entries[p] == s for p, s in unchanged.items())
    assert sealed_mark(archive), "the re-seal did not record its mark"
    verify_ok(archive)


# -- 2. unchanged rows are not rewritten; gone and back ---------------------------------------


def test_unchanged_rerun_rewrites_no_row_and_marks_nothing_gone(sandbox: SandboxThread,
                                                                tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, [spectrum_job(sandbox), onpremise_job(sandbox)])
    archive = tmp_path / "archive"
    run_ok(manifest)
    first = item_rows(archive)
    complete = {k for k, s in statuses(archive).items() if s == "complete"}
    assert complete, "the first run archived nothing"
    run_ok(manifest)
    second = item_rows(archive)
    now = statuses(archive)
    assert not [k for k, s in now.items() if s == "gone"], "up-to-date items were marked gone"
    assert {k for k, s in now.items() if s == "complete"} == complete
    # Up to date: the row is left exactly as the first run wrote it (seen_run, updated...).
    rewritten = [k for k in complete if second[k] != first[k]]
    assert not rewritten, rewritten[:5]
    report = json.loads(sorted((archive / ".assetvault/reports").glob("*.json"))[-1]
                        .read_text())
    assert all(job.get("gone", 0) == 0 for job in report["jobs"]), report["jobs"]


def test_unchanged_rerun_makes_only_listing_requests(sandbox: SandboxThread,
                                                     tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, [spectrum_job(sandbox)])
    run_ok(manifest)
    assert file_paths_requested(sandbox), "the first run fetched no file"
    sandbox.reset_counts()
    run_ok(manifest)
    assert any(p.startswith("/api/") for p in sandbox.counts), "the re-run listed nothing"
    assert file_paths_requested(sandbox) == {}


def test_an_asset_gone_upstream_is_marked_gone_then_revived_without_a_fetch(
        tmp_path: Path) -> None:
    # One organization: content ids are 1000 + index whatever assets_per_org is, and every
    # record and byte is a function of the config, so a sandbox with one record fewer on the
    # same ports is the same upstream with the last record (1005: active, with files) deleted.
    full, smaller = (DatasetConfig(organizations=1, assets_per_org=n) for n in (6, 5))
    vanishing = "/1005/"
    archive = tmp_path / "archive"
    with SandboxThread(full) as box:
        api_port, files_port = ports(box)
        manifest = write_manifest(tmp_path, [spectrum_job(box)])
        run_ok(manifest)
        first = item_rows(archive)
    back = {k for k in first if vanishing in k}
    assert any(first[k][2] == "file" for k in back), "record 1005 has no file to go"
    assert all(statuses(archive)[k] == "complete" for k in back)
    data_before = {k: (archive / "data" / str(first[k][4])).read_bytes() for k in back}

    with SandboxThread(smaller, api_port=api_port, files_port=files_port) as box:
        run_ok(manifest)
    gone = statuses(archive)
    assert {k for k, s in gone.items() if s == "gone"} == back
    assert all(s == "complete" for k, s in gone.items() if k not in back)
    verify_ok(archive)  # the archive never deletes: gone files stay in the bag

    with SandboxThread(full, api_port=api_port, files_port=files_port) as box:
        run_ok(manifest)
        fetched = file_paths_requested(box)
    revived = statuses(archive)
    assert all(revived[k] == "complete" for k in back), {k: revived[k] for k in back}
    assert all(s == "complete" for s in revived.values())
    urls = [str(first[k][3]) for k in back if first[k][3]]
    assert urls
    for url in urls:
        assert fetched.get(urlsplit(url).path, 0) == 0, f"{url} was fetched again"
    assert fetched == {}, fetched
    for k, content in data_before.items():
        assert (archive / "data" / str(first[k][4])).read_bytes() == content
    verify_ok(archive)


# -- 3. listings the fast parser refuses -------------------------------------------------------


ORG = "7000000000000300322"
LISTING = f"/api/assets/saved/client/carhartt/organization/{ORG}"
FILE_PATH = "/files/logo.png"
FILE_BODY = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
BIG = 123456789012345678901234567890123  # beyond 64 bits


class Upstream(ThreadingHTTPServer):
    """A Spectrum listing of one record (raw JSON text) and that record's file."""

    daemon_threads = True
    listing = b""
    hits: Counter[str]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class UpstreamHandler(BaseHTTPRequestHandler):
    server: Upstream

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self.server.hits[path] += 1
        if path == LISTING:
            self._send(self.server.listing, "application/json; charset=utf-8")
        elif path == FILE_PATH:
            self._send(FILE_BODY, "image/png")
        else:
            self.send_error(404)

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream(("127.0.0.1", 0), UpstreamHandler)
    server.hits = Counter()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(SERVER_TIMEOUT)


def listing_text(base_url: str, odd_field: str, record_id: str = "4242") -> bytes:
    """A Spectrum envelope whose one record carries ``"odd": <odd_field>`` as raw JSON text."""
    record = (f'{{"id": {record_id}, "uploadedAssetId": 19004242, '
              f'"uploadedAssetUri": "{base_url}{FILE_PATH}", '
              '"organizationIdentifier": "' + ORG + '", "userFacingFileName": "logo", '
              '"productionJobs": null, "hasProductionJob": false, "clientHandle": "carhartt", '
              '"active": true, "createdDate": "2021-05-04T13:31:29.967", '
              '"lastModification": "2021-05-04T13:31:29.967", '
              f'"odd": {odd_field}}}')
    return ('{"lastModification": "2023-06-29T19:21:06.8069348+00:00", "error": null, '
            '"apiVersion": "3.0.23173.1", "hash": "AfoO01vWutb1C6lHVCpCqw==", '
            f'"contents": [{record}]}}').encode()


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def strict_json(raw: bytes) -> Any:
    """Parse as RFC 8259 JSON: UTF-8 (strictly) and no NaN/Infinity."""
    return json.loads(raw.decode("utf-8"), parse_constant=_no_constants)


ODD_VALUES = {
    "lone-surrogate": '"logo \\ud800 final"',
    "nan": "NaN",
    "big-int": str(BIG),
    "plain": '"plain"',
}


def _archive_odd_listing(upstream: Upstream, tmp_path: Path, odd: str,
                         record_id: str = "4242") -> tuple[Path, Any, bytes]:
    """Serve the odd listing, run (exit 0 expected), and give the archive, the record as the
    stdlib reads the listing, and the asset.json bytes."""
    upstream.listing = listing_text(upstream.base_url, ODD_VALUES[odd], record_id)
    job = {"name": "spec", "source": "spectrum", "base_url": upstream.base_url,
           "token": "odd-json-token", "client": "carhartt", "organizations": [ORG],
           "rate_limit": 50, "burst": 50, "retries": 0}
    manifest = write_manifest(tmp_path, [job])
    result = run_cli("run", manifest, "--no-progress")
    archive = tmp_path / "archive"
    assert "Traceback" not in result.err, result.err
    assert result.code == 0, result.out + result.err
    assert upstream.hits[LISTING] >= 1 and upstream.hits[FILE_PATH] == 1
    folder = archive / f"data/spectrum/carhartt/{ORG}/{record_id}"
    assert (folder / "original.png").read_bytes() == FILE_BODY
    saved = folder / "asset.json"
    assert saved.is_file(), "the record's asset.json was not archived"
    record = json.loads(upstream.listing)["contents"][0]
    return archive, record, saved.read_bytes()


def test_lone_surrogate_record_gets_a_valid_asset_json(upstream: Upstream,
                                                       tmp_path: Path) -> None:
    archive, record, raw = _archive_odd_listing(upstream, tmp_path, "lone-surrogate")
    assert strict_json(raw) == record  # the record as the API gave it, as valid JSON
    verify_ok(archive)


def test_lone_surrogate_record_does_not_fail_the_listing(upstream: Upstream,
                                                         tmp_path: Path) -> None:
    # What holds today whatever the encoding: no crash, no failure, a verifiable bag, and a
    # re-run that finds the record unchanged.
    archive, record, raw = _archive_odd_listing(upstream, tmp_path, "lone-surrogate")
    assert json.loads(raw) == record  # readable by the stdlib, which passes surrogates
    report = json.loads(sorted((archive / ".assetvault/reports").glob("*.json"))[-1]
                        .read_text())
    assert report["failures"] == [] and report["exit_code"] == 0
    verify_ok(archive)
    run_ok(tmp_path / "jobs.yaml")
    assert upstream.hits[FILE_PATH] == 1
    assert (archive / f"data/spectrum/carhartt/{ORG}/4242/asset.json").read_bytes() == raw


def test_nan_in_a_record_gets_a_valid_asset_json(upstream: Upstream, tmp_path: Path) -> None:
    archive, record, raw = _archive_odd_listing(upstream, tmp_path, "nan")
    saved = strict_json(raw)
    assert "odd" in saved
    assert {k: v for k, v in saved.items() if k != "odd"} == {
        k: v for k, v in record.items() if k != "odd"}
    verify_ok(archive)


def test_integer_beyond_64_bits_is_kept_exactly(upstream: Upstream, tmp_path: Path) -> None:
    archive, record, raw = _archive_odd_listing(upstream, tmp_path, "big-int")
    saved = strict_json(raw)
    assert saved == record
    assert saved["odd"] == BIG
    verify_ok(archive)


def test_content_id_beyond_64_bits_is_archived_under_that_id(upstream: Upstream,
                                                             tmp_path: Path) -> None:
    huge_id = str(2**64 + 7)
    archive, record, raw = _archive_odd_listing(upstream, tmp_path, "plain", record_id=huge_id)
    assert record["id"] == int(huge_id)
    assert strict_json(raw)["id"] == int(huge_id)
    verify_ok(archive)


def test_integer_beyond_64_bits_does_not_fail_the_listing(upstream: Upstream,
                                                          tmp_path: Path) -> None:
    # What holds today: the record is archived (if not exactly) and the run succeeds.
    archive, _record, raw = _archive_odd_listing(upstream, tmp_path, "big-int")
    assert strict_json(raw)["id"] == 4242
    verify_ok(archive)
