"""Politeness and fault tolerance, measured by the sandbox's own request log."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import bagit
import pytest
from aiohttp import web

from assetvault.sandbox import DatasetConfig, SandboxThread

from .conftest import onpremise_job, run_cli, spectrum_job, write_manifest
from .loopback import Loopback, forward

BUSY = DatasetConfig(organizations=2, assets_per_org=10, products=4, beers=2,
                     file_size_min=20_000, file_size_max=300_000)


def report(archive: Path) -> dict[str, object]:
    path = sorted((archive / ".assetvault/reports").glob("*.json"))[-1]
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def complete(archive: Path) -> list[tuple[str, str, str]]:
    db = sqlite3.connect(archive / ".assetvault/state.sqlite")
    try:
        return db.execute("SELECT path, url, sha256 FROM items WHERE kind = 'file' "
                          "AND status = 'complete'").fetchall()
    finally:
        db.close()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def max_in_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_mixed_faults_every_good_file_verified_bad_ones_reported(tmp_path: Path) -> None:
    faults = ("files:500@p0.08,files:503@p0.04:retry-after=1,files:reset@p0.08,"
              "files:truncate@p0.08,files:badmd5@p0.08,api:503@p0.2:retry-after=1")
    config = DatasetConfig(organizations=1, assets_per_org=8, products=2, beers=1,
                           file_size_min=20_000, file_size_max=300_000)
    with SandboxThread(config, faults=faults) as box:
        (tmp_path / "bad.txt").write_text(f"{box.files_url}/cdn/nothing-here.png\nfile:///etc/hosts\n")
        jobs = [spectrum_job(box, retries=10), onpremise_job(box, retries=10),
                {"name": "bad", "source": "urls", "urls_file": "bad.txt", "retries": 2}]
        manifest = write_manifest(tmp_path, jobs, defaults={"timeout": 10})
        result = run_cli("run", manifest, "--no-progress", timeout=180)
        archive = tmp_path / "archive"
        assert result.code == 1, result.err
        done = complete(archive)
        assert len(done) > 30
        for path, url, sha in done:
            served = box.dataset.file_bytes(url.removeprefix(box.files_url))
            assert hashlib.sha256(served).hexdigest() == sha, path
            assert hashlib.sha256((archive / "data" / path).read_bytes()).hexdigest() == sha
    failures = report(archive)["failures"]
    assert isinstance(failures, list)
    assert {f["job"] for f in failures} == {"bad"}
    reasons = " ".join(f["error"] for f in failures)
    assert "404" in reasons and "file:" in reasons
    bagit.Bag(str(archive)).validate()
    assert run_cli("verify", archive).code == 0


def test_no_second_sees_more_than_rate_plus_burst(tmp_path: Path) -> None:
    with SandboxThread(BUSY, faults="files:503@p0.1") as box:
        jobs = [spectrum_job(box, rate_limit=4, burst=2),
                onpremise_job(box, rate_limit=4, burst=2, file_rate_limit=25, file_burst=5)]
        manifest = write_manifest(tmp_path, jobs)
        assert run_cli("run", manifest, "--no-progress", timeout=180).code == 0
        by_port: dict[int, list[float]] = defaultdict(list)
        for r in box.requests:
            by_port[r.port].append(r.time)
    assert max_in_window(by_port[port_of(box.api_url)]) <= 4 + 2
    files = by_port[port_of(box.files_url)]
    assert len(files) > 60
    assert max_in_window(files) <= 25 + 5


def test_no_retry_before_retry_after(tmp_path: Path) -> None:
    with SandboxThread(DatasetConfig(), faults="files:503@first1:retry-after=1") as box:
        manifest = write_manifest(tmp_path, [onpremise_job(box)])
        assert run_cli("run", manifest, "--no-progress").code == 0
        seen: dict[str, list[float]] = defaultdict(list)
        for r in box.requests:
            if r.port == port_of(box.files_url):
                seen[r.path].append(r.time)
    assert seen
    for path, times in seen.items():
        assert len(times) == 2, path
        assert times[1] - times[0] >= 1.0, path


# Retry-After is 3 here, not the 1 s every other test sends: 1 s is also what the client falls
# back to without the header, so a client ignoring it would pass those. One request a second
# (burst 1) spaces the client's sends, so the one after the refusal leaves a second after it:
# the refusal has long been read by then, and that request must wait for the origin.
RETRY_AFTER = 3
HELD = 2.5  # seconds at least between the refusal and any later request to that origin


def body_of(path: str) -> bytes:
    return hashlib.sha256(path.encode()).digest() * 300


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_on_a_file_holds_that_origin_for_every_request(tmp_path: Path,
                                                                   status: int) -> None:
    refused: list[str] = []

    async def files(request: web.Request) -> web.StreamResponse:
        if not refused:  # only the very first request: the others must be held, not refused
            refused.append(request.path)
            return web.Response(status=status, headers={"Retry-After": str(RETRY_AFTER)})
        return web.Response(body=body_of(request.path))

    names = [f"f{i}.bin" for i in range(3)]
    with Loopback(files) as server:
        (tmp_path / "urls.txt").write_text("".join(f"{server.url}/{n}\n" for n in names))
        job = {"name": "files", "source": "urls", "urls_file": "urls.txt", "file_rate_limit": 1,
               "file_burst": 1, "concurrency": 4, "per_host": 4}
        result = run_cli("run", write_manifest(tmp_path, [job]), "--no-progress")
        arrivals = list(server.arrivals)
    assert result.code == 0, result.err
    first, *later = arrivals
    assert first.path == refused[0]
    # Every file once, the refused one twice: the refusal was retried, nothing else was.
    assert sorted(a.path for a in later) == [f"/{n}" for n in names]
    early = [(a.path, round(a.time - first.time, 2)) for a in later if a.time - first.time < HELD]
    assert not early, f"asked before the {RETRY_AFTER} s the server asked for: {early}"
    host = server.url.removeprefix("http://").replace(":", "_")
    for n in names:
        path = tmp_path / "archive/data/urls/files" / host / n
        assert path.read_bytes() == body_of(f"/{n}")
    bagit.Bag(str(tmp_path / "archive")).validate()


def test_retry_after_after_a_redirect_holds_the_origin_that_answered(tmp_path: Path) -> None:
    refused: list[str] = []

    async def cdn(request: web.Request) -> web.StreamResponse:
        if request.path == "/moved.bin" and not refused:
            refused.append(request.path)
            return web.Response(status=429, headers={"Retry-After": str(RETRY_AFTER)})
        return web.Response(body=body_of(request.path))

    with Loopback(cdn) as server:
        async def redirector(request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(server.url + request.path)

        with Loopback(redirector) as front:
            direct = [f"{server.url}/d{i}.bin" for i in range(3)]
            (tmp_path / "urls.txt").write_text("\n".join([f"{front.url}/moved.bin", *direct]))
            job = {"name": "files", "source": "urls", "urls_file": "urls.txt",
                   "file_rate_limit": 1, "file_burst": 1, "concurrency": 2, "per_host": 2}
            result = run_cli("run", write_manifest(tmp_path, [job]), "--no-progress")
        arrivals = list(server.arrivals)
    assert result.code == 0, result.err
    at = next(a.time for a in arrivals if a.path == "/moved.bin")
    early = [(a.path, round(a.time - at, 2)) for a in arrivals if 0 < a.time - at < HELD]
    assert not early, f"the origin that answered 429 was asked again at once: {early}"


def test_retry_after_on_a_listing_holds_that_origin_for_every_job(tmp_path: Path) -> None:
    config = DatasetConfig(organizations=1, assets_per_org=1, products=2, beers=0)
    with SandboxThread(config) as box:
        refused: list[str] = []

        async def api(request: web.Request) -> web.StreamResponse:
            if not refused:
                refused.append(request.path)
                return web.json_response({"error": "slow down"}, status=429,
                                         headers={"Retry-After": str(RETRY_AFTER)})
            return await forward(request, box.api_url)

        with Loopback(api) as proxy:
            # Two jobs on one API origin: one listing is refused, the other job's must wait.
            owners = box.dataset.owner_ids("products")
            jobs = [onpremise_job(box, name=f"onp{i}", base_url=proxy.url, products=[owner],
                                  beers=[], rate_limit=1, burst=1)
                    for i, owner in enumerate(owners)]
            result = run_cli("run", write_manifest(tmp_path, jobs), "--no-progress")
            arrivals = list(proxy.arrivals)
    assert result.code == 0, result.err
    first, *later = arrivals
    listings = sorted(f"/products/{owner}/assets.json" for owner in owners)
    assert first.path.split("?")[0] == refused[0]
    assert sorted(a.path.split("?")[0] for a in later) == listings
    early = [(a.path, round(a.time - first.time, 2)) for a in later if a.time - first.time < HELD]
    assert not early, f"asked before the {RETRY_AFTER} s the server asked for: {early}"
    reported = report(tmp_path / "archive")["jobs"]
    assert isinstance(reported, list)
    assert all(j["failed"] == 0 and j["found"] > 0 for j in reported)
    bagit.Bag(str(tmp_path / "archive")).validate()


def test_spectrum_403_is_backed_off_and_retried(tmp_path: Path) -> None:
    with SandboxThread(DatasetConfig(), faults="spectrum:403@first2:retry-after=1") as box:
        manifest = write_manifest(tmp_path, [spectrum_job(box)])
        result = run_cli("run", manifest, "--no-progress")
        assert result.code == 0, result.err
        orgs = box.dataset.organization_ids()
        listed = {org: [r for r in box.requests if r.path.endswith(f"/organization/{org}")]
                  for org in orgs}
        fetched = {r.path for r in box.requests if r.port == port_of(box.files_url)}
        records = {org: box.dataset.content_ids(org) for org in orgs}
    archive = tmp_path / "archive"
    for org, asked in listed.items():
        # One page each (6 records, pages of 100): refused twice, then answered.
        assert len(asked) == 3, (org, [r.query for r in asked])
        assert all("page=1" in r.query.split("&") for r in asked)
        first, second, third = (r.time for r in asked)
        assert second - first >= 1.0 and third - second >= 1.0, "retried before Retry-After"
        for content_id in records[org]:
            assert (archive / f"data/spectrum/carhartt/{org}/{content_id}/asset.json").is_file()
    done = complete(archive)
    assert done and {url.removeprefix(box.files_url) for _, url, _ in done} == fetched
    for path, url, sha in done:
        served = box.dataset.file_bytes(url.removeprefix(box.files_url))
        assert hashlib.sha256((archive / "data" / path).read_bytes()).hexdigest() == sha, path
        assert hashlib.sha256(served).hexdigest() == sha, path
    jobs = report(archive)["jobs"]
    assert isinstance(jobs, list) and jobs[0]["failed"] == 0 and jobs[0]["downloaded"] > 0
    bagit.Bag(str(archive)).validate()


def test_persistent_spectrum_403_names_both_causes(tmp_path: Path) -> None:
    with SandboxThread(DatasetConfig(), faults="spectrum:403") as box:
        manifest = write_manifest(tmp_path, [spectrum_job(box, retries=0)])
        result = run_cli("run", manifest, "--no-progress")
    assert result.code == 2
    text = result.err.lower()
    assert "token" in text and "rate limit" in text


def test_a_stalled_download_is_abandoned_and_resumed(tmp_path: Path) -> None:
    config = DatasetConfig(organizations=1, assets_per_org=2, products=0, beers=0,
                           file_size_min=3_000_000, file_size_max=3_000_000)
    with SandboxThread(config, faults="files:stall@first1:fraction=0.5:seconds=30") as box:
        manifest = write_manifest(tmp_path, [spectrum_job(box, include=["original"])],
                                  defaults={"timeout": 1})
        result = run_cli("run", manifest, "--no-progress")
        assert result.code == 0, result.err
        seconds = [r for r in box.requests if r.path.startswith("/cdn/")]
    again = [r for r in seconds if "Range" in r.headers]
    assert again and all(int(r.headers["Range"][6:].rstrip("-")) > 0 for r in again)


def test_a_slow_but_moving_download_is_not_killed(tmp_path: Path) -> None:
    config = DatasetConfig(organizations=1, assets_per_org=1, products=0, beers=0,
                           file_size_min=60_000, file_size_max=60_000)
    with SandboxThread(config, faults="files:slow:rate=30000") as box:
        manifest = write_manifest(tmp_path, [spectrum_job(box, include=["original"])],
                                  defaults={"timeout": 1})
        assert run_cli("run", manifest, "--no-progress").code == 0
        assert sum(1 for r in box.requests if r.path.startswith("/cdn/")) == 1


def test_circuit_breaker_stops_asking_a_refusing_origin(tmp_path: Path) -> None:
    config = DatasetConfig(organizations=2, assets_per_org=20, products=0, beers=0)
    with SandboxThread(config, faults="files:503") as box:
        manifest = write_manifest(tmp_path, [spectrum_job(box, retries=4)],
                                  defaults={"concurrency": 4, "per_host": 4})
        result = run_cli("run", manifest, "--no-progress", timeout=120)
        asked = sum(1 for r in box.requests if r.port == port_of(box.files_url))
    assert result.code == 1
    assert asked <= 30 + 4
    assert "stopped asking" in result.err


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (root only); skipped where mounting is not allowed."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_the_run_cleanly_and_a_rerun_finishes(tiny_disk: Path,
                                                                tmp_path: Path) -> None:
    with SandboxThread(DatasetConfig(file_size_min=40_000, file_size_max=80_000)) as box:
        manifest = write_manifest(tmp_path, [spectrum_job(box), onpremise_job(box)],
                                  archive=str(tiny_disk / "archive"))
        result = run_cli("run", manifest, "--no-progress")
        assert result.code == 1
        assert "disk is full" in result.err and "Traceback" not in result.err
        subprocess.run(["mount", "-o", "remount,size=64m", str(tiny_disk)], check=True)
        again = run_cli("run", manifest, "--no-progress")
        assert again.code == 0, again.err
        bagit.Bag(str(tiny_disk / "archive")).validate()
        assert run_cli("verify", tiny_disk / "archive").code == 0
