"""Files past what is held in memory stream into S3 while they download (SPEC 7): the upload
completes only after every check, a failed check aborts it at once, a cut download resumes
by Range (that attempt staged on disk, then put), and the object carries its SHA-256. Real CLI, real
SeaweedFS, a loopback upstream of the test's own."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from assetvault.archive.journal import Journal, Placed
from assetvault.archive.snapshot import reconcile
from assetvault.archive.store import Store
from assetvault.archive.upkeep import replay
from assetvault.storage import Meta
from assetvault.storage.s3 import PART, WHOLE, S3Storage

from .conftest import write_manifest
from .loopback import Loopback
from .seaweed import SeaweedS3
from .test_s3_cli import bucket, cli, start_run, storage_of, wait_while_running

SIZE = 2 * PART + 3 * 1024 * 1024  # three parts: the upload is a multipart one
BODY = hashlib.sha256(b"stream").digest() * (SIZE // 32)
WAIT = 60.0


def uploads_left(seaweed: SeaweedS3, name: str) -> list[Any]:
    import botocore.session

    env = seaweed.env()
    client = botocore.session.get_session().create_client(
        "s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    return list(client.list_multipart_uploads(Bucket=name).get("Uploads", []))


def serve(request: web.Request, *, md5: bytes | None = None) -> web.StreamResponse:
    """The head of BODY (or of its Range), with an ETag: ``send`` sends the bytes."""
    start = 0
    headers = {"ETag": '"v1"', "Accept-Ranges": "bytes", "Content-Type": "application/x-bin"}
    status = 200
    ranged = request.headers.get("Range", "")
    if ranged.startswith("bytes=") and request.headers.get("If-Range") == '"v1"':
        start = int(ranged[6:].rstrip("-"))
        headers["Content-Range"] = f"bytes {start}-{SIZE - 1}/{SIZE}"
        status = 206
    elif md5 is not None:
        headers["Content-MD5"] = base64.b64encode(md5).decode()
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_length = SIZE - start
    return resp


async def send(request: web.Request, resp: web.StreamResponse, start: int,
               cut_at: int | None) -> web.StreamResponse:
    await resp.prepare(request)
    end = SIZE if cut_at is None else cut_at
    for offset in range(start, end, 1 << 20):
        await resp.write(BODY[offset:min(offset + (1 << 20), end)])
    if cut_at is not None:
        assert request.transport is not None
        request.transport.close()  # a connection dropped mid-body
        return resp
    await resp.write_eof()
    return resp


def run(tmp: Path, seaweed: SeaweedS3, server: Loopback, name: str) -> tuple[int, str, Path]:
    (tmp / "urls.txt").write_text(f"{server.url}/big.bin\n")
    jobs = write_manifest(tmp, [{"name": "big", "source": "urls", "urls_file": "urls.txt",
                                 "retries": 2}], archive=f"s3://{name}/arch")
    result = cli(seaweed, "run", jobs, "-q", "--state-dir", tmp / "state")
    return result.code, result.err, jobs


def payload_key(server: Loopback) -> str:
    host = server.url.removeprefix("http://").replace(":", "_")
    return f"data/urls/big/{host}/big.bin"


def test_a_large_file_streams_into_a_multipart_upload_and_carries_its_digest(
        seaweed: SeaweedS3, tmp_path: Path) -> None:
    assert SIZE > WHOLE

    async def big(request: web.Request) -> web.StreamResponse:
        return await send(request, serve(request), 0, None)

    name = bucket(seaweed)
    with Loopback(big) as server:
        code, err, _ = run(tmp_path, seaweed, server, name)
        key = payload_key(server)
    assert code == 0, err
    store = storage_of(seaweed, f"s3://{name}/arch", tmp_path)
    assert store.read(key) == BODY
    meta = store.metadata(key)
    assert meta["sha256"] == hashlib.sha256(BODY).hexdigest()
    assert meta["key"] and meta["job"] == "big"
    assert uploads_left(seaweed, name) == []
    assert not list((tmp_path / "state").rglob("*.part")), "the resume copy outlived the upload"


def test_a_failed_check_aborts_the_upload_and_leaves_no_object(seaweed: SeaweedS3,
                                                               tmp_path: Path) -> None:
    wrong = hashlib.md5(b"another file", usedforsecurity=False).digest()

    async def lying(request: web.Request) -> web.StreamResponse:
        return await send(request, serve(request, md5=wrong), 0, None)

    name = bucket(seaweed)
    with Loopback(lying) as server:
        code, err, _ = run(tmp_path, seaweed, server, name)
        key = payload_key(server)
        tries = len(server.arrivals)
    assert code == 1, err
    assert tries == 3  # each attempt streamed, each was refused
    store = storage_of(seaweed, f"s3://{name}/arch", tmp_path)
    assert store.size(key) is None
    # Aborted by this run itself, not left for the next one's sweep.
    assert uploads_left(seaweed, name) == []


def test_a_cut_download_resumes_by_range_into_a_whole_object(seaweed: SeaweedS3,
                                                             tmp_path: Path) -> None:
    cut = PART + 5 * 1024 * 1024  # past the first part: one part went up before the cut
    first = threading.Event()

    async def flaky(request: web.Request) -> web.StreamResponse:
        resp = serve(request)
        if not first.is_set():
            first.set()
            return await send(request, resp, 0, cut)
        start = SIZE - (resp.content_length or SIZE)
        return await send(request, resp, start, None)

    name = bucket(seaweed)
    with Loopback(flaky) as server:
        code, err, _ = run(tmp_path, seaweed, server, name)
        key = payload_key(server)
        ranges = [a.headers.get("Range") for a in server.arrivals]
    assert code == 0, err
    assert ranges[0] is None and ranges[1] is not None and len(ranges) == 2
    assert int(ranges[1].removeprefix("bytes=").rstrip("-")) > 0
    store = storage_of(seaweed, f"s3://{name}/arch", tmp_path)
    assert store.read(key) == BODY
    assert store.metadata(key)["sha256"] == hashlib.sha256(BODY).hexdigest()
    assert uploads_left(seaweed, name) == []


def test_nothing_is_at_the_key_while_the_file_streams(seaweed: SeaweedS3,
                                                      tmp_path: Path) -> None:
    half_sent, release = threading.Event(), threading.Event()

    async def held(request: web.Request) -> web.StreamResponse:
        resp = serve(request)
        await resp.prepare(request)
        await resp.write(BODY[:PART + (1 << 20)])
        half_sent.set()
        await asyncio.to_thread(release.wait, WAIT)
        await resp.write(BODY[PART + (1 << 20):])
        await resp.write_eof()
        return resp

    name = bucket(seaweed)
    store = storage_of(seaweed, f"s3://{name}/arch", tmp_path)
    with Loopback(held) as server:
        (tmp_path / "urls.txt").write_text(f"{server.url}/big.bin\n")
        jobs = write_manifest(tmp_path, [{"name": "big", "source": "urls",
                                          "urls_file": "urls.txt"}], archive=f"s3://{name}/arch")
        proc = start_run(seaweed, jobs, tmp_path / "state")
        try:
            # A part is up before the download ends: the upload overlaps it.
            wait_while_running(proc, "the first part uploaded",
                               lambda: half_sent.is_set() and bool(uploads_left(seaweed, name)))
            assert not list(store.list("data/")), "a half-streamed object is visible"
        finally:
            release.set()
        _, err = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0, err
        assert store.read(payload_key(server)) == BODY


def complete_unstamped(store: S3Storage, key: str, sha256: str) -> None:
    """BODY streamed to ``key`` and completed, never stamped: its run died right there."""
    upload = store.stream(key, Meta(sha256, "http://h/big.bin", None, "k", "big"), SIZE)
    assert upload is not None

    async def put() -> None:
        for offset in range(0, SIZE, 1 << 20):
            await upload.write(BODY[offset:offset + (1 << 20)])
        await upload._writer.close()

    asyncio.run(put())


@pytest.mark.parametrize("stamped", [True, False])
def test_a_fresh_machine_records_a_streamed_object_whose_run_died_before_its_stamp(
        seaweed: SeaweedS3, tmp_path: Path, stamped: bool) -> None:
    """The run died between completing the upload and stamping its SHA-256: the object is
    whole (completed only after every check), so it is hashed from the store, stamped and
    recorded; never fetched again."""
    name = bucket(seaweed)
    store = storage_of(seaweed, f"s3://{name}/arch", tmp_path)
    key = "data/urls/big/h/big.bin"
    sha = hashlib.sha256(BODY).hexdigest()
    complete_unstamped(store, key, sha if stamped else "")
    fresh = storage_of(seaweed, f"s3://{name}/arch", tmp_path)
    fresh.load_listing()
    state = Store(tmp_path / "state.sqlite")
    try:
        assert reconcile(state, fresh, "2026-12-02T00:00:00Z") == 1
        rows = {path: (digest, size) for path, digest, size in state.payload()}
    finally:
        state.close()
    assert rows == {key.removeprefix("data/"): (sha, SIZE)}
    assert fresh.metadata(key)["sha256"] == sha


def test_the_journal_replay_stamps_a_streamed_object_its_run_did_not(seaweed: SeaweedS3,
                                                                    tmp_path: Path) -> None:
    """Same machine, same state: the run died between completing the upload and stamping;
    the journal's replay re-hashes the object, records it and stamps it."""
    name = bucket(seaweed)
    store = storage_of(seaweed, f"s3://{name}/arch", tmp_path)
    key = "data/urls/big/h/big.bin"
    sha = hashlib.sha256(BODY).hexdigest()
    complete_unstamped(store, key, "")
    journal = Journal(tmp_path / "journal")
    journal.open()
    journal.append(Placed("k", "big", "http://h/big.bin", key.removeprefix("data/"), SIZE, sha,
                          None, None, None))
    journal.close()
    state = Store(tmp_path / "state.sqlite")
    try:
        assert replay(state, store, Journal(tmp_path / "journal"), "2026-12-02T00:00:00Z") == 1
    finally:
        state.close()
    assert store.metadata(key)["sha256"] == sha


def test_a_runs_own_uploads_wait_for_its_sweep_and_survive_it(seaweed: SeaweedS3,
                                                              tmp_path: Path) -> None:
    """The sweep beside a run aborts uploads begun before the run by the server's clock: one
    of the run's own, begun while the sweep lists, would look like a killed run's. Here the
    server's clock is a minute behind ours: without the wait, the sweep aborts the upload."""
    name = bucket(seaweed)
    store = storage_of(seaweed, f"s3://{name}/arch", tmp_path)
    store.started = datetime.now(UTC) + timedelta(minutes=1)
    key = "data/urls/big/h/big.bin"
    store.sweep_beside()

    async def write_and_commit(swept: asyncio.Event) -> None:
        upload = store.stream(key, Meta("", "http://h/big.bin", None, "k", "big"), SIZE)
        assert upload is not None
        for offset in range(0, SIZE - (1 << 20), 1 << 20):
            await upload.write(BODY[offset:offset + (1 << 20)])
        await swept.wait()  # two parts are up: the upload is in progress while the sweep lists
        await upload.write(BODY[SIZE - (1 << 20):])
        await upload.commit(Meta(hashlib.sha256(BODY).hexdigest(), "http://h/big.bin", None,
                                 "k", "big"))

    async def main() -> None:
        swept = asyncio.Event()
        task = asyncio.create_task(write_and_commit(swept))
        await asyncio.wait({task}, timeout=0.5)  # room for an upload that does not wait
        await asyncio.to_thread(store.sweep)
        swept.set()
        await asyncio.wait_for(task, WAIT)

    asyncio.run(main())
    assert store.read(key) == BODY
