"""Object-storage archives (SPEC 7), end to end: the real CLI into a real S3 server (SeaweedFS)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import bagit
import pytest

from assetvault.sandbox import DatasetConfig, SandboxThread
from assetvault.storage.base import Meta
from assetvault.storage.location import StoreUrl
from assetvault.storage.s3 import S3Storage

from .conftest import API_KEY, TOKEN, Cli, run_cli
from .seaweed import SeaweedS3

WAIT = 60.0
_buckets = itertools.count()


def bucket(seaweed: SeaweedS3) -> str:
    name = f"cli-{os.getpid()}-{next(_buckets)}"
    seaweed.create_bucket(name)
    return name


def manifest(tmp: Path, box: SandboxThread, archive: str, **extra: Any) -> Path:
    jobs = [{"name": "spec", "source": "spectrum", "base_url": box.api_url, "token": TOKEN,
             "client": "carhartt", "organizations": box.dataset.organization_ids(), **extra},
            {"name": "onp", "source": "onpremise", "base_url": box.api_url, "api_key": API_KEY,
             "products": "all", **extra}]
    path = tmp / "jobs.yaml"
    path.write_text(json.dumps({"version": 1, "archive": archive, "jobs": jobs}))
    return path


def cli(seaweed: SeaweedS3, *args: str | Path, env: dict[str, str] | None = None) -> Cli:
    return run_cli(*args, env={**seaweed.env(), **(env or {})})


def storage_of(seaweed: SeaweedS3, url: str, tmp: Path) -> S3Storage:
    scheme_less = url.removeprefix("s3://")
    name, _, prefix = scheme_less.partition("/")
    return S3Storage(StoreUrl("s3", name, prefix), tmp / "reader", seaweed.env())


def s3_client(seaweed: SeaweedS3) -> Any:
    """botocore's S3 client of the test store: what another S3 tool would do to it."""
    import botocore.session

    env = seaweed.env()
    return botocore.session.get_session().create_client(
        "s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


def download(store: S3Storage, into: Path) -> Path:
    """A copy of the prefix, as any S3 tool would make it."""
    for obj in store.list(""):
        target = into / obj.key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.read(obj.key))
    return into


def upstream_path(store: S3Storage, key: str) -> str:
    """The path on the file host an object came from (its source-url metadata)."""
    source = unquote(store.metadata(key)["source-url"])
    return "/" + source.split("//", 1)[1].split("/", 1)[1].split("?")[0]


def start_run(seaweed: SeaweedS3, jobs: Path, state: Path,
              **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "assetvault", "run", str(jobs), "-q",
                             "--state-dir", str(state)],
                            env={**os.environ, **seaweed.env(), **env},
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def wait_while_running(proc: subprocess.Popen[bytes], what: str,
                       condition: Callable[[], bool]) -> None:
    """Poll (bounded) until ``condition`` holds; fail if the run ended first."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def kill9(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=WAIT)


def file_requests(box: SandboxThread) -> dict[str, int]:
    """Requests for files (not listings) so far, by path."""
    listings = ("/api/", "/products", "/beers", "/restaurants", "/menu_items")
    return {p: n for p, n in box.counts.items() if not p.startswith(listings)}


def test_an_archive_in_s3_is_a_bag_a_fresh_machine_resumes(seaweed: SeaweedS3,
                                                            tmp_path: Path) -> None:
    url = f"s3://{bucket(seaweed)}/backups/brand"
    config = DatasetConfig(organizations=1, assets_per_org=8, products=2, beers=0)
    with SandboxThread(config) as box:
        jobs = manifest(tmp_path, box, url)
        first = cli(seaweed, "run", jobs, "--no-progress", "--state-dir", tmp_path / "one")
        assert first.code == 0, first.err
        assert f"report: {url}/.assetvault/reports/run-00001-" in first.out
        fetched = file_requests(box)
        assert fetched
        # Another machine: no local state at all.
        again = cli(seaweed, "run", jobs, "--no-progress", "--state-dir", tmp_path / "two")
        assert again.code == 0, again.err
        assert file_requests(box) == fetched, "a complete, unchanged file was fetched again"
    store = storage_of(seaweed, url, tmp_path)
    copy = download(store, tmp_path / "copy")
    bagit.Bag(str(copy)).validate()
    payload = [s.key for s in store.list("data/") if not s.key.endswith("asset.json")]
    meta = store.metadata(payload[0])
    assert meta["sha256"] == hashlib.sha256(store.read(payload[0])).hexdigest()
    assert meta["source-url"] and meta["key"] and meta["job"] in ("spec", "onp")
    assert store.size(".assetvault/state.sqlite")
    verified = cli(seaweed, "verify", url)
    assert verified.code == 0 and "ok:" in verified.out, verified.err
    assert cli(seaweed, "verify", url, "--fast").code == 0
    status = cli(seaweed, "status", url)
    assert status.code == 0 and "spec" in status.out and "complete" in status.out


def test_a_download_broken_off_into_s3_resumes_by_range(seaweed: SeaweedS3,
                                                        tmp_path: Path) -> None:
    """SPEC 7 keeps SPEC 4's promises: a 3 MiB file cut off half way (one the store would
    take in one request) is kept in the state folder and resumed by Range, not refetched."""
    size = 3 << 20
    url = f"s3://{bucket(seaweed)}/arch"
    config = DatasetConfig(organizations=1, assets_per_org=1, products=0, beers=0,
                           file_size_min=size, file_size_max=size)
    with SandboxThread(config, faults="files:reset@first1:fraction=0.5") as box:
        jobs = manifest(tmp_path, box, url, retries=2)
        result = cli(seaweed, "run", jobs, "-q", "--state-dir", tmp_path / "s")
        assert result.code == 0, result.err
        files = [r for r in box.requests if r.path.startswith("/cdn/")]
    cut = [r for r in files if r.path == files[0].path]  # the one reset half way
    assert len(cut) == 2, [r.path for r in files]
    again = cut[1].headers
    assert again.get("Range", "").startswith("bytes=") and again.get("If-Range"), again
    assert int(again["Range"][6:].rstrip("-")) > 0
    store = storage_of(seaweed, url, tmp_path)
    bagit.Bag(str(download(store, tmp_path / "copy"))).validate()


def test_verify_names_a_damaged_object(seaweed: SeaweedS3, tmp_path: Path) -> None:
    url = f"s3://{bucket(seaweed)}/arch"
    with SandboxThread(DatasetConfig(organizations=1, assets_per_org=6, products=0,
                                     beers=0)) as box:
        assert cli(seaweed, "run", manifest(tmp_path, box, url), "-q", "--state-dir",
                   tmp_path / "s").code == 0
    store = storage_of(seaweed, url, tmp_path)
    victim = next(s.key for s in store.list("data/") if not s.key.endswith("asset.json"))
    store.put_bytes(victim, b"not what was archived")
    result = cli(seaweed, "verify", url)
    assert result.code == 1 and f"mismatch: {victim}" in result.out
    # Same size, no stored digest: the fast check cannot vouch for it either.
    size = store.size(victim)
    assert size is not None
    store.put_bytes(victim, b"x" * size)
    fast = cli(seaweed, "verify", url, "--fast")
    assert fast.code == 1 and f"mismatch: {victim}" in fast.out
    # One object longer, one shorter by as much, each keeping its stored digest: the total
    # (Payload-Oxum) is unchanged, and only the sizes the run recorded name them.
    longer, shorter = [s.key for s in store.list("data/") if not s.key.endswith("asset.json")
                       and s.key != victim][:2]
    for key, change in ((longer, b"+" * 100), (shorter, None)):
        meta = store.metadata(key)
        body = store.read(key)
        body = body + change if change else body[:-100]
        store.put_bytes(key, body, Meta(meta["sha256"], unquote(meta["source-url"]),
                                        key=unquote(meta["key"]), job=meta["job"]))
    fast = cli(seaweed, "verify", url, "--fast")
    assert fast.code == 1, fast.out
    assert longer in fast.out and shorter in fast.out, fast.out


def test_kill_9_then_another_machine_finishes_without_fetching_twice(seaweed: SeaweedS3,
                                                                     tmp_path: Path) -> None:
    url = f"s3://{bucket(seaweed)}/arch"
    config = DatasetConfig(organizations=1, assets_per_org=12, products=0, beers=0,
                           file_size_min=150_000, file_size_max=150_000)
    with SandboxThread(config, faults="files:slow:rate=300000") as box:
        jobs = manifest(tmp_path, box, url, concurrency=2, per_host=2)
        proc = start_run(seaweed, jobs, tmp_path / "dead")
        store = storage_of(seaweed, url, tmp_path)
        try:
            wait_while_running(proc, "three objects", lambda: len(
                [s for s in store.list("data/") if not s.key.endswith("asset.json")]) >= 3)
        finally:
            kill9(proc)
        done = {s.key: store.read(s.key) for s in store.list("data/")
                if not s.key.endswith("asset.json")}
        before = file_requests(box)
        again = cli(seaweed, "run", jobs, "-q", "--state-dir", tmp_path / "other")
        assert again.code == 0, again.err
        after = file_requests(box)
        for key, body in done.items():
            path = upstream_path(store, key)
            assert after[path] == before[path], f"{key} was fetched again"
            assert store.read(key) == body
        for obj in store.list("data/"):
            if not obj.key.endswith("asset.json"):
                assert store.read(obj.key) == box.dataset.file_bytes(
                    upstream_path(store, obj.key)), obj.key
    bagit.Bag(str(download(store, tmp_path / "copy"))).validate()


def test_a_prefix_whose_objects_were_deleted_is_empty(seaweed: SeaweedS3,
                                                      tmp_path: Path) -> None:
    """SeaweedFS goes on listing the folder of a deleted object: a prefix with folders and no
    object in them holds nothing, and becomes an archive like any empty prefix."""
    name = bucket(seaweed)
    client = s3_client(seaweed)
    client.put_object(Bucket=name, Key="arch/old/stuff/thing.bin", Body=b"x")
    client.delete_object(Bucket=name, Key="arch/old/stuff/thing.bin")
    url = f"s3://{name}/arch"
    with SandboxThread(DatasetConfig(organizations=1, assets_per_org=2, products=0,
                                     beers=0)) as box:
        result = cli(seaweed, "run", manifest(tmp_path, box, url), "-q", "--state-dir",
                     tmp_path / "s")
    assert result.code == 0, result.err


def test_incomplete_multipart_uploads_are_aborted_by_the_next_run(seaweed: SeaweedS3,
                                                                   tmp_path: Path) -> None:
    name = bucket(seaweed)
    client = s3_client(seaweed)
    started = client.create_multipart_upload(Bucket=name, Key="arch/data/half.bin")
    client.upload_part(Bucket=name, Key="arch/data/half.bin", UploadId=started["UploadId"],
                       PartNumber=1, Body=b"x" * (5 << 20))
    with SandboxThread(DatasetConfig(organizations=1, assets_per_org=2, products=0,
                                     beers=0)) as box:
        result = cli(seaweed, "run", manifest(tmp_path, box, f"s3://{name}/arch"), "-q",
                     "--state-dir", tmp_path / "s")
    assert result.code == 0, result.err
    left = client.list_multipart_uploads(Bucket=name, Prefix="arch/").get("Uploads", [])
    assert left == []


@pytest.mark.parametrize("problem", ["missing bucket", "wrong secret", "no endpoint",
                                     "silent endpoint", "bad endpoint", "http refused",
                                     "foreign prefix", "foreign data", "foreign bag"])
def test_bad_store_settings_exit_2_before_anything_is_listed(seaweed: SeaweedS3, tmp_path: Path,
                                                             problem: str) -> None:
    name = bucket(seaweed)
    url, env = f"s3://{name}/arch", {}
    # Accepts connections (the kernel's backlog) and never answers: was waited on for ever.
    silent = socket.create_server(("127.0.0.1", 0))
    if problem == "missing bucket":
        url = "s3://no-such-bucket-anywhere/arch"
    elif problem == "wrong secret":
        env = {"AWS_SECRET_ACCESS_KEY": "Wrong-Secret-0451"}
    elif problem == "no endpoint":
        env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    elif problem == "silent endpoint":
        env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{silent.getsockname()[1]}"}
    elif problem == "bad endpoint":  # obstore panics on it (a BaseException from Rust)
        env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:1/ x"}
    elif problem == "http refused":  # said "no" to plain http: was used over http anyway
        env = {"AWS_ALLOW_HTTP": "false"}
    elif problem == "foreign prefix":
        storage_of(seaweed, url, tmp_path).put_bytes("holiday/photo.jpg", b"jpeg")
    else:  # someone else's objects where ours would go: never adopted, never overwritten
        theirs = storage_of(seaweed, url, tmp_path)
        theirs.put_bytes("data/someone-elses.csv", b"a,b\n")
        if problem == "foreign bag":
            theirs.put_bytes("bagit.txt", b"BagIt-Version: 0.97\n")
            theirs.put_bytes("manifest-sha256.txt", b"their manifest\n")
    with SandboxThread(DatasetConfig(organizations=1, assets_per_org=2, products=0,
                                     beers=0)) as box:
        with silent:
            result = cli(seaweed, "run", manifest(tmp_path, box, url), "-q", "--state-dir",
                         tmp_path / "s", env=env)
        assert not any(p.startswith("/api/") for p in box.counts), "something was listed"
    assert result.code == 2, (result.code, result.err)
    assert url in result.err and "Traceback" not in result.err
    assert "Wrong-Secret-0451" not in result.err and seaweed.secret_key not in result.err
    if problem == "foreign bag":
        theirs = storage_of(seaweed, url, tmp_path)
        assert theirs.read("manifest-sha256.txt") == b"their manifest\n"
        assert sorted(s.key for s in theirs.list("")) == [
            "bagit.txt", "data/someone-elses.csv", "manifest-sha256.txt"]


def test_a_replaced_object_is_kept_in_the_history_and_a_gone_one_stays(seaweed: SeaweedS3,
                                                                        tmp_path: Path) -> None:
    url = f"s3://{bucket(seaweed)}/arch"
    with SandboxThread(DatasetConfig(organizations=1, assets_per_org=6, products=0,
                                     beers=0)) as box:
        jobs = manifest(tmp_path, box, url)
        assert cli(seaweed, "run", jobs, "-q", "--state-dir", tmp_path / "s").code == 0
        store = storage_of(seaweed, url, tmp_path)
        before = {s.key: store.read(s.key) for s in store.list("data/")}
        org = box.dataset.organization_ids()[0]
        changed, removed = box.dataset.content_ids(org)[:2]
        box.dataset.touch_spectrum(org, changed)
        box.dataset.remove_spectrum(org, removed)
        # Another machine again: the history copy must not depend on local files.
        result = cli(seaweed, "run", jobs, "-q", "--state-dir", tmp_path / "t")
        assert result.code == 0, result.err
    after = {s.key: store.read(s.key) for s in store.list("data/")}
    replaced = [k for k in before if f"/{changed}/" in k and before[k] != after[k]]
    assert replaced, "the touched asset's files did not change"
    history = {s.key: store.read(s.key) for s in store.list(".assetvault/history/")}
    for key in replaced:
        old_sha = hashlib.sha256(before[key]).hexdigest()
        assert any(old_sha[:16] in h and body == before[key] for h, body in history.items()), key
    gone = [k for k in before if f"/{removed}/" in k]
    assert gone and all(after[k] == before[k] for k in gone)
    bagit.Bag(str(download(store, tmp_path / "copy"))).validate()


def test_a_machine_whose_state_is_older_than_the_archive_takes_the_archives(
        seaweed: SeaweedS3, tmp_path: Path) -> None:
    url = f"s3://{bucket(seaweed)}/arch"
    with SandboxThread(DatasetConfig(organizations=1, assets_per_org=4, products=0,
                                     beers=0)) as box:
        jobs = manifest(tmp_path, box, url)
        assert cli(seaweed, "run", jobs, "-q", "--state-dir", tmp_path / "a").code == 0
        org = box.dataset.organization_ids()[0]
        box.dataset.touch_spectrum(org, box.dataset.content_ids(org)[0])
        assert cli(seaweed, "run", jobs, "-q", "--state-dir", tmp_path / "b").code == 0
        fetched = file_requests(box)
        # Machine a again: its state predates b's run, which already fetched the new files.
        again = cli(seaweed, "run", jobs, "-v", "--state-dir", tmp_path / "a")
        assert again.code == 0, again.err
        assert "state restored from" in again.err
        assert file_requests(box) == fetched, "files another machine archived were fetched again"
    bagit.Bag(str(download(storage_of(seaweed, url, tmp_path), tmp_path / "copy"))).validate()


def test_no_secret_reaches_an_object_or_its_metadata(seaweed: SeaweedS3, tmp_path: Path) -> None:
    url = f"s3://{bucket(seaweed)}/arch"
    with SandboxThread(DatasetConfig(organizations=1, assets_per_org=4, products=2, beers=0),
                       faults="files:500@p0.3") as box:
        result = cli(seaweed, "run", manifest(tmp_path, box, url, retries=0), "-v",
                     "--state-dir", tmp_path / "s")
    assert result.code in (0, 1), result.err
    store = storage_of(seaweed, url, tmp_path)
    secrets = [TOKEN, API_KEY, seaweed.secret_key]
    for obj in store.list(""):
        blob = store.read(obj.key) + json.dumps(store.metadata(obj.key)).encode()
        for secret in secrets:
            assert secret.encode() not in blob, obj.key
    for secret in secrets:
        assert secret not in result.out + result.err


def test_the_state_reaches_the_store_while_a_run_goes_on(seaweed: SeaweedS3,
                                                          tmp_path: Path) -> None:
    """The periodic snapshot: a machine that dies mid-run has left its state in the archive
    (the interval shortened for the test; 5 minutes by default)."""
    url = f"s3://{bucket(seaweed)}/arch"
    config = DatasetConfig(organizations=1, assets_per_org=20, products=0, beers=0,
                           file_size_min=100_000, file_size_max=100_000)
    with SandboxThread(config, faults="files:slow:rate=100000") as box:
        jobs = manifest(tmp_path, box, url, concurrency=2, per_host=2)
        proc = start_run(seaweed, jobs, tmp_path / "s", ASSETVAULT_SNAPSHOT_SECONDS="0.5")
        store = storage_of(seaweed, url, tmp_path)
        try:
            wait_while_running(proc, "a snapshot",
                               lambda: store.size(".assetvault/state.sqlite") is not None)
        finally:
            kill9(proc)
    snapshot = tmp_path / "snap.sqlite"
    snapshot.write_bytes(store.read(".assetvault/state.sqlite"))
    import sqlite3

    with sqlite3.connect(snapshot) as db:  # taken mid-run: the run is not finished in it
        assert db.execute("SELECT finished FROM runs").fetchall() == [(None,)]
