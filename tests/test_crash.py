"""Crash safety and resume: the real CLI, killed with SIGKILL or SIGTERM at chosen moments."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import bagit
from aiohttp import web

from assetvault.archive.journal import Journal, Placed
from assetvault.sandbox import DatasetConfig, SandboxThread

from .conftest import onpremise_job, run_cli, spectrum_job, write_manifest
from .loopback import Loopback

WAIT = 30.0


def start_cli(*args: str | Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "assetvault", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)


def wait_until(condition: Callable[[], bool], what: str, proc: subprocess.Popen[bytes]) -> None:
    """Poll a condition (bounded); fail early if the process ended first."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}: {proc.communicate()[1]!r}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def kill9(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=WAIT)


def payload_files(archive: Path) -> dict[str, bytes]:
    data = archive / "data"
    if not data.exists():
        return {}
    return {str(p.relative_to(data)): p.read_bytes() for p in data.rglob("*")
            if p.is_file() and p.name != "asset.json"}


def rows(archive: Path) -> dict[str, tuple[str, str]]:
    """path -> (url, sha256) of complete files."""
    db = sqlite3.connect(archive / ".assetvault/state.sqlite")
    try:
        return {p: (u, s) for p, u, s in db.execute(
            "SELECT path, url, sha256 FROM items WHERE kind = 'file' AND status = 'complete'")}
    finally:
        db.close()


def url_path(box: SandboxThread, url: str) -> str:
    return url.removeprefix(box.files_url).removeprefix(box.api_url).split("?")[0]


def assert_complete_and_valid(box: SandboxThread, archive: Path) -> None:
    bagit.Bag(str(archive)).validate()
    for path, (url, sha) in rows(archive).items():
        assert hashlib.sha256(box.dataset.file_bytes(url_path(box, url))).hexdigest() == sha, path
    leftovers = [p for p in (archive / "data").rglob("*") if p.name.endswith((".part", ".tmp"))]
    assert not leftovers


def test_sigkill_during_listing_then_rerun(tmp_path: Path) -> None:
    with SandboxThread(DatasetConfig(), faults="spectrum:stall@first1:seconds=60") as box:
        manifest = write_manifest(tmp_path, [spectrum_job(box), onpremise_job(box)])
        proc = start_cli("run", manifest, "--no-progress")
        wait_until(lambda: any(p.startswith("/api/") for p in box.counts), "a listing", proc)
        kill9(proc)
        box.set_faults(None)
        result = run_cli("run", manifest, "--no-progress")
        assert result.code == 0, result.err
        assert_complete_and_valid(box, tmp_path / "archive")


def test_sigkill_mid_large_file_resumes_with_range(tmp_path: Path) -> None:
    big = 8 * 1024 * 1024
    config = DatasetConfig(organizations=1, assets_per_org=1, products=0, beers=0,
                           file_size_min=big, file_size_max=big)
    with SandboxThread(config, faults="files:stall@first1:fraction=0.5:seconds=60") as box:
        manifest = write_manifest(tmp_path, [spectrum_job(box, include=["original"])])
        proc = start_cli("run", manifest, "--no-progress")
        partial = tmp_path / "archive/.assetvault/partial"
        wait_until(lambda: any(p.stat().st_size >= 1 << 20 for p in partial.glob("*.part")),
                   "a megabyte on disk", proc)
        kill9(proc)
        box.set_faults(None)
        box.reset_counts()
        result = run_cli("run", manifest, "--no-progress")
        assert result.code == 0, result.err
        ranged = [r for r in box.requests if r.path.startswith("/cdn/")]
        assert ranged, "the original was not requested again"
        headers = ranged[0].headers
        assert headers.get("Range", "").startswith("bytes=")
        assert int(headers["Range"][6:].rstrip("-")) > 0
        assert headers.get("If-Range")
        assert_complete_and_valid(box, tmp_path / "archive")


def test_sigkill_after_renames_never_refetches_a_complete_file(tmp_path: Path) -> None:
    config = DatasetConfig(organizations=2, assets_per_org=12, products=3, beers=2)
    with SandboxThread(config, faults="files:stall@p0.5:seconds=60") as box:
        manifest = write_manifest(tmp_path, [spectrum_job(box), onpremise_job(box)])
        archive = tmp_path / "archive"
        proc = start_cli("run", manifest, "--no-progress")
        wait_until(lambda: len(payload_files(archive)) >= 3, "files in data/", proc)
        kill9(proc)
        present = payload_files(archive)
        box.set_faults(None)
        box.reset_counts()
        result = run_cli("run", manifest, "--no-progress")
        assert result.code == 0, result.err
        known = rows(archive)
        for path, content in present.items():
            url, sha = known[path]
            assert hashlib.sha256(content).hexdigest() == sha
            assert box.counts[url_path(box, url)] == 0, f"{path} was fetched twice"
        assert_complete_and_valid(box, archive)


def test_journal_replay_records_placed_files_without_fetching(tmp_path: Path) -> None:
    with SandboxThread(DatasetConfig()) as box:
        manifest = write_manifest(tmp_path, [onpremise_job(box)])
        archive = tmp_path / "archive"
        assert run_cli("run", manifest, "--no-progress").code == 0
        # What a crash between rename and commit leaves: files in data/, journaled, no rows.
        db = sqlite3.connect(archive / ".assetvault/state.sqlite")
        lost = db.execute("SELECT key, job, url, path, size, sha256, version, etag, last_modified "
                          "FROM items WHERE kind = 'file' AND status = 'complete' LIMIT 4"
                          ).fetchall()
        db.executemany("DELETE FROM items WHERE key = ?", [(r[0],) for r in lost])
        db.commit()
        db.close()
        fields = ("key", "job", "url", "path", "size", "sha256", "version", "etag",
                  "last_modified")
        with open(archive / ".assetvault/journal", "w") as journal:
            for r in lost:
                journal.write(json.dumps(dict(zip(fields, r, strict=True))) + "\n")
            journal.write('{"torn line')
        box.reset_counts()
        assert run_cli("run", manifest, "--no-progress").code == 0
        for r in lost:
            assert box.counts[url_path(box, r[2])] == 0
        assert len(rows(archive)) >= len(lost)
        assert not (archive / ".assetvault/journal").exists() or not (
            archive / ".assetvault/journal").read_text()


def test_a_streamed_file_is_never_visible_under_data_until_whole(tmp_path: Path) -> None:
    size = 3 * 1024 * 1024  # over fetch.SMALL: streamed to a partial file, not read whole
    content = hashlib.sha256(b"big").digest() * (size // 32)
    half_sent, release = threading.Event(), threading.Event()

    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"ETag": '"v1"', "Content-Type": "image/png"})
        resp.content_length = size
        await resp.prepare(request)
        await resp.write(content[:size // 2])
        half_sent.set()
        await asyncio.to_thread(release.wait, WAIT)  # held until the test has looked
        await resp.write(content[size // 2:])
        await resp.write_eof()
        return resp

    archive = tmp_path / "archive"

    def big_on_disk() -> bool:  # under data/ or beside it: wherever the bytes are going
        return any(p.is_file() and p.stat().st_size >= 1 << 20 and "state.sqlite" not in p.name
                   for p in archive.rglob("*"))

    with Loopback(big) as server:
        (tmp_path / "urls.txt").write_text(f"{server.url}/big.png\n")
        manifest = write_manifest(tmp_path, [{"name": "big", "source": "urls",
                                              "urls_file": "urls.txt"}])
        final = (archive / "data/urls/big" / server.url.removeprefix("http://").replace(":", "_")
                 / "big.png")
        proc = start_cli("run", manifest, "--no-progress")
        try:
            wait_until(lambda: half_sent.is_set() and big_on_disk(), "half the file on disk",
                       proc)
            assert not final.exists(), "a half-written file is visible under data/"
            assert not any(p.is_file() for p in (archive / "data").rglob("*"))
            assert any(p.stat().st_size >= 1 << 20
                       for p in (archive / ".assetvault/partial").glob("*"))
        finally:
            release.set()
        _out, err = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0, err
    assert final.read_bytes() == content
    assert not list((archive / ".assetvault/partial").glob("*.part"))
    bagit.Bag(str(archive)).validate()


def journal_lost_rows(archive: Path, where: str, count: int) -> list[Placed]:
    """What a crash between rename and commit leaves: files in data/, journaled, no rows."""
    db = sqlite3.connect(archive / ".assetvault/state.sqlite")
    try:
        lost = [Placed(*r) for r in db.execute(
            "SELECT key, job, url, path, size, sha256, version, etag, last_modified, kind "
            f"FROM items WHERE status = 'complete' AND {where} ORDER BY path LIMIT ?", (count,))]
        with db:
            db.executemany("DELETE FROM items WHERE key = ?", [(p.key,) for p in lost])
    finally:
        db.close()
    journal = Journal(archive / ".assetvault/journal")
    journal.open()
    for placed in lost:
        journal.append(placed)
    journal.close()
    return lost


def test_journal_replay_rehashes_and_never_records_changed_bytes(tmp_path: Path) -> None:
    with SandboxThread(DatasetConfig()) as box:
        manifest = write_manifest(tmp_path, [onpremise_job(box)])
        archive = tmp_path / "archive"
        assert run_cli("run", manifest, "--no-progress").code == 0
        lost = journal_lost_rows(archive, "kind = 'file'", 3)
        [doc] = journal_lost_rows(archive, "kind = 'doc'", 1)
        same_size, longer, intact = (archive / "data" / p.path for p in lost)
        good = same_size.read_bytes()
        same_size.write_bytes(bytes([good[0] ^ 1]) + good[1:])  # a flipped bit: size unchanged
        longer.write_bytes(longer.read_bytes() + b"\0")
        doc_file = archive / "data" / doc.path
        doc_file.write_bytes(doc_file.read_bytes().replace(b'"', b"'", 1))
        box.reset_counts()
        result = run_cli("run", manifest, "--no-progress")
        assert result.code == 0, result.err
        known = rows(archive)
        for placed, path in zip(lost, (same_size, longer, intact), strict=True):
            served = box.dataset.file_bytes(url_path(box, placed.url))
            assert path.read_bytes() == served, placed.path
            assert known[placed.path][1] == hashlib.sha256(served).hexdigest() == placed.sha256
        # The changed files were fetched again; the intact one was recorded from the journal.
        assert [box.counts[url_path(box, p.url)] for p in lost] == [1, 1, 0]
        assert hashlib.sha256(doc_file.read_bytes()).hexdigest() == doc.sha256
        assert_complete_and_valid(box, archive)
    assert run_cli("verify", archive).code == 0


def test_sigterm_winds_down_records_seals_and_exits_130(tmp_path: Path) -> None:
    config = DatasetConfig(organizations=2, assets_per_org=12, products=3, beers=2)
    with SandboxThread(config, faults="files:stall@p0.5:seconds=60") as box:
        manifest = write_manifest(tmp_path, [spectrum_job(box), onpremise_job(box)])
        archive = tmp_path / "archive"
        proc = start_cli("run", manifest, "--no-progress")
        wait_until(lambda: len(payload_files(archive)) >= 3, "files in data/", proc)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=WAIT)
        assert proc.returncode == 130, err
        assert b"Traceback" not in err
        bagit.Bag(str(archive)).validate()
        report = json.loads(sorted((archive / ".assetvault/reports").glob("*.json"))[-1]
                            .read_text())
        assert report["exit_code"] == 130 and report["interrupted"] is True
        present = payload_files(archive)
        box.set_faults(None)
        box.reset_counts()
        assert run_cli("run", manifest, "--no-progress").code == 0
        known = rows(archive)
        for path in present:
            assert box.counts[url_path(box, known[path][0])] == 0
        assert_complete_and_valid(box, archive)


def test_upstream_change_keeps_history_and_gone_assets_stay(tmp_path: Path) -> None:
    with SandboxThread(DatasetConfig()) as box:
        org = box.dataset.organization_ids()[0]
        manifest = write_manifest(tmp_path, [spectrum_job(box, organizations=[org])])
        archive = tmp_path / "archive"
        assert run_cli("run", manifest, "--no-progress").code == 0
        before = payload_files(archive)
        changed, removed = box.dataset.content_ids(org)[:2]
        box.dataset.touch_spectrum(org, changed)
        box.dataset.remove_spectrum(org, removed)
        box.reset_counts()
        result = run_cli("run", manifest, "--no-progress")
        assert result.code == 0, result.err
        after = payload_files(archive)
        changed_paths = [p for p in before if f"/{changed}/" in p and before[p] != after.get(p)]
        assert changed_paths, "the touched asset's files did not change"
        history = list((archive / ".assetvault/history").rglob("*"))
        for path in changed_paths:
            old_sha = hashlib.sha256(before[path]).hexdigest()
            assert any(h.is_file() and old_sha[:16] in h.name and h.read_bytes() == before[path]
                       for h in history), path
        gone = [p for p in before if f"/{removed}/" in p]
        assert gone and all(after[p] == before[p] for p in gone)
        status = run_cli("status", archive)
        assert "gone" in status.out
        bagit.Bag(str(archive)).validate()
        assert run_cli("verify", archive).code == 0


def test_verify_existing_refetches_what_no_longer_matches(tmp_path: Path) -> None:
    with SandboxThread(DatasetConfig()) as box:
        manifest = write_manifest(tmp_path, [onpremise_job(box)])
        archive = tmp_path / "archive"
        assert run_cli("run", manifest, "--no-progress").code == 0
        victim = next(p for p in (archive / "data").rglob("original.*"))
        good = victim.read_bytes()
        victim.write_bytes(bytes([good[0] ^ 1]) + good[1:])
        assert run_cli("run", manifest, "--no-progress").code == 0
        assert victim.read_bytes() != good  # trusting the state: same size, not looked at
        assert run_cli("run", manifest, "--no-progress", "--verify-existing").code == 0
        assert victim.read_bytes() == good
        assert run_cli("verify", archive).code == 0


def test_since_last_run_sends_the_last_clean_start(tmp_path: Path) -> None:
    with SandboxThread(DatasetConfig()) as box:
        manifest = write_manifest(tmp_path, [onpremise_job(box, since="last-run")])
        listings = lambda: [r for r in box.requests if r.path.endswith("assets.json")]  # noqa: E731
        assert run_cli("run", manifest, "--no-progress").code == 0
        assert listings() and not any("last_updated_at" in r.query for r in listings())
        # That run left pending files: the next one lists everything again, and fetches
        # what became ready.
        box.reset_counts()
        for kind in ("products", "beers"):
            for owner in box.dataset.owner_ids(kind):
                for asset in box.dataset.asset_ids(kind, owner):
                    box.dataset.set_processed(kind, owner, asset, True)
        assert run_cli("run", manifest, "--no-progress").code == 0
        assert not any("last_updated_at" in r.query for r in listings())
        first_clean = json.loads(sorted((tmp_path / "archive/.assetvault/reports")
                                        .glob("*.json"))[-1].read_text())
        assert first_clean["jobs"][0]["pending"] == 0 and first_clean["jobs"][0]["downloaded"] > 0
        # A clean run: the next one asks only for what changed since it started.
        box.reset_counts()
        owner = box.dataset.owner_ids("products")[0]
        asset = box.dataset.asset_ids("products", owner)[0]
        box.dataset.touch_onpremise("products", owner, asset)
        result = run_cli("run", manifest, "--no-progress")
        assert result.code == 0, result.err
        assert listings() and all("last_updated_at=" in r.query for r in listings())
        report = json.loads(sorted((tmp_path / "archive/.assetvault/reports").glob("*.json"))[-1]
                            .read_text())
        assert report["jobs"][0]["downloaded"] >= 1


def test_since_last_run_lists_new_owners_and_a_changed_selection_in_full(tmp_path: Path
                                                                          ) -> None:
    # The last clean run's start hides what was updated before it: right for the owners that
    # run listed, with what it selected; a product added to the job since, or a selection
    # widened, has files that no run ever listed, however old.
    with SandboxThread(DatasetConfig()) as box:
        first, added = box.dataset.owner_ids("products")[:2]
        for owner in (first, added):
            for asset in box.dataset.asset_ids("products", owner):
                box.dataset.set_processed("products", owner, asset, True)
        archive = tmp_path / "archive"

        def run(products: list[str], include: list[str]) -> dict[str, list[str]]:
            box.reset_counts()
            manifest = write_manifest(tmp_path, [onpremise_job(
                box, since="last-run", products=products, beers=[], include=include)])
            result = run_cli("run", manifest, "--no-progress")
            assert result.code == 0, result.err
            return {owner: [r.query for r in box.requests
                            if r.path.endswith(f"/products/{owner}/assets.json")]
                    for owner in (first, added)}

        def archived(owner: str, name: str) -> bool:
            return any(archive.glob(f"data/onpremise/products/{owner}/*/{name}"))

        asked = run([first], ["original"])
        assert asked[first] and "last_updated_at" not in asked[first][0]
        asked = run([first, added], ["original"])
        assert "last_updated_at=" in asked[first][0]  # listed cleanly, with this selection
        assert "last_updated_at" not in asked[added][0]  # never listed: in full
        assert archived(added, "original.*")
        gone = box.dataset.asset_ids("products", first)[0]
        box.dataset.remove_onpremise("products", first, gone)
        asked = run([first, added], ["original", "versions"])
        assert all("last_updated_at" not in asked[o][0] for o in (first, added))
        assert archived(first, "versions/*") and archived(added, "versions/*")
        # Every listing was in full: what one no longer lists is gone (with `since` too).
        status = run_cli("status", archive)
        assert "gone" in status.out, status.out
        asked = run([first, added], ["original", "versions"])
        assert all("last_updated_at=" in asked[o][0] for o in (first, added))
        bagit.Bag(str(archive)).validate()


def test_a_signal_at_any_early_moment_exits_130_with_a_valid_bag_or_none(tmp_path: Path) -> None:
    with SandboxThread(DatasetConfig()) as box:
        for i, moment in enumerate((0.05, 0.25, 0.5, 0.8, 1.2)):
            folder = tmp_path / str(i)
            folder.mkdir()
            manifest = write_manifest(folder, [spectrum_job(box), onpremise_job(box)])
            proc = start_cli("run", manifest, "--no-progress")
            # Not a wait for anything: this picks the moment the signal lands.
            time.sleep(moment)
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=WAIT)
            archive = folder / "archive"
            assert b"Traceback" not in err
            if proc.returncode == -signal.SIGTERM:
                # Before the run's handlers were in (start-up) or after they were gone (the
                # bag sealed): whatever exists must come out of the next run valid.
                if archive.exists():
                    assert run_cli("run", manifest, "--no-progress").code == 0
                    bagit.Bag(str(archive)).validate()
                continue
            assert proc.returncode in (0, 130), (moment, err)
            if archive.exists():
                bagit.Bag(str(archive)).validate()


def test_a_small_write_left_by_a_killed_run_is_swept(tmp_path: Path) -> None:
    """A small body half written when the process died is neither placed nor resumable: the
    next run removes it (the bag stays valid either way; the disk should not fill with them)."""
    with SandboxThread(DatasetConfig(organizations=1, assets_per_org=1, products=1,
                                     beers=0)) as box:
        manifest = write_manifest(tmp_path, [onpremise_job(box, products=["1001"], beers=[])])
        assert run_cli("run", manifest, "--no-progress").code == 0
        stale = tmp_path / "archive/.assetvault/partial/small-4242-7.tmp"
        stale.write_bytes(b"half of a file")
        assert run_cli("run", manifest, "--no-progress").code == 0
    assert not stale.exists()
    bagit.Bag(str(tmp_path / "archive")).validate()
