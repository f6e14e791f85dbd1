"""SPEC section 10 against real loopback servers that misbehave on purpose.

Each test here failed on the code before section 10 was built: a resumed partial spliced onto
another version's bytes, a trickle that kept a run alive for ever, gzip bytes decoded into the
archive, link-local targets fetched, a redirect loop walked to the limit on every retry.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from assetvault import errors
from assetvault.archive.paths import ArchivePaths
from assetvault.archive.placer import Placer
from assetvault.archive.store import Store
from assetvault.config.jobs import SpectrumJob
from assetvault.models import Document, Entry, Outcome, Status
from assetvault.net import api
from assetvault.net.api import JobApi
from assetvault.net.http import Http, Pool
from assetvault.net.limits import Bandwidth, Limits
from assetvault.net.origin import GuardedResolver, check_url, is_link_local
from assetvault.sources import SpectrumSource
from assetvault.storage import LocalStorage
from assetvault.transfer.fetch import Fetcher, JobFetch
from tests.transfer.test_fetch import BODY, Server, half_then_drop, item

NEW = bytes(reversed(BODY))  # another version of the same length
NEW_SHA = hashlib.sha256(NEW).hexdigest()
OLD_SHA = hashlib.sha256(BODY).hexdigest()


async def fetch(tmp: Path, url: str, *, retries: int = 3, timeout: float = 5.0,
                min_speed: float = 0.0, allow_hosts: tuple[str, ...] = (),
                bandwidth: float = 0.0, expected_size: int | None = None) -> Outcome:
    """One item through the real fetcher, with the run's resolver guard."""
    paths = ArchivePaths(tmp)
    paths.create()
    with ThreadPoolExecutor(2) as pool:
        http = Http(None, Limits(), Pool(GuardedResolver(frozenset(allow_hosts)), "test"))
        fetcher = Fetcher(http, Placer(LocalStorage(paths.root)), paths.partial, pool,
                          rand=lambda: 0.0, bandwidth=Bandwidth(bandwidth))
        job = JobFetch(retries, timeout, 1 << 30, None, allow_hosts, min_speed)
        try:
            return await fetcher.fetch(item(url, expected_size=expected_size), job)
        finally:
            await http.close()


def archived(tmp: Path, url: str) -> Path:
    return tmp / "data/files" / url.rsplit("/", 1)[-1]


def resumed_range(request: web.Request) -> int:
    return int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))


def whole_new(etag: str = '"v2"') -> web.Response:
    return web.Response(body=NEW, headers={"ETag": etag})


# --- resume: a 206 must continue the same representation ----------------------------------------


def run_resume(tmp: Path, answer_resume: object) -> tuple[Outcome, list[dict[str, str]]]:
    """First request drops half way; the resumed request gets ``answer_resume``; any later
    request gets the new version whole."""
    async def go() -> tuple[Outcome, list[dict[str, str]]]:
        calls = {"n": 0}

        async def handler(request: web.Request) -> web.StreamResponse:
            calls["n"] += 1
            if calls["n"] == 1:
                return await half_then_drop(request, tmp)
            if "Range" in request.headers:
                return answer_resume(request)  # type: ignore[operator, no-any-return]
            return whole_new()

        async with Server({"/f.bin": handler}) as srv:
            out = await fetch(tmp, srv.url + "/f.bin")
            return out, srv.seen
    return asyncio.run(go())


def test_206_with_another_etag_ignoring_if_range_restarts_from_zero(tmp_path: Path) -> None:
    def answer(request: web.Request) -> web.Response:
        start = resumed_range(request)  # the server ignores If-Range: the new version's bytes
        return web.Response(status=206, body=NEW[start:], headers={
            "ETag": '"v2"', "Content-Range": f"bytes {start}-{len(NEW) - 1}/{len(NEW)}"})
    out, seen = run_resume(tmp_path, answer)
    assert out.status is Status.DOWNLOADED and out.sha256 == NEW_SHA
    assert archived(tmp_path, "f.bin").read_bytes() == NEW
    assert "Range" in seen[1] and "Range" not in seen[2]  # restarted at once, from zero


def test_206_naming_another_total_restarts_from_zero(tmp_path: Path) -> None:
    longer = NEW + b"tail"

    def answer(request: web.Request) -> web.Response:
        # Same ETag (a server that never changes it), but the total gives the new version away.
        start = resumed_range(request)
        return web.Response(status=206, body=longer[start:], headers={
            "ETag": '"v1"', "Content-Range": f"bytes {start}-{len(longer) - 1}/{len(longer)}"})
    out, seen = run_resume(tmp_path, answer)
    assert out.status is Status.DOWNLOADED and out.sha256 == NEW_SHA
    assert archived(tmp_path, "f.bin").read_bytes() == NEW
    assert "Range" not in seen[2]


def test_206_from_zero_with_unknown_total_is_not_a_continuation(tmp_path: Path) -> None:
    def answer(request: web.Request) -> web.Response:
        # The whole old file again, as a 206 from byte 0 of a total it does not name: appended
        # to the partial it would double its first half, and nothing could count the bytes.
        return web.Response(status=206, body=BODY, headers={
            "ETag": '"v1"', "Content-Range": f"bytes 0-{len(BODY) - 1}/*"})
    out, _ = run_resume(tmp_path, answer)
    assert out.status is Status.DOWNLOADED and out.sha256 == NEW_SHA
    assert archived(tmp_path, "f.bin").read_bytes() == NEW


def test_206_without_a_validator_is_not_trusted(tmp_path: Path) -> None:
    def answer(request: web.Request) -> web.Response:
        start = resumed_range(request)
        return web.Response(status=206, body=NEW[start:], headers={
            "Content-Range": f"bytes {start}-{len(NEW) - 1}/{len(NEW)}"})
    out, _ = run_resume(tmp_path, answer)
    assert out.sha256 == NEW_SHA and archived(tmp_path, "f.bin").read_bytes() == NEW


def test_a_true_continuation_is_still_resumed(tmp_path: Path) -> None:
    def answer(request: web.Request) -> web.Response:
        start = resumed_range(request)
        assert request.headers["If-Range"] == '"v1"'
        return web.Response(status=206, body=BODY[start:], headers={
            "ETag": '"v1"', "Content-Range": f"bytes {start}-{len(BODY) - 1}/{len(BODY)}"})
    out, seen = run_resume(tmp_path, answer)
    assert out.status is Status.DOWNLOADED and out.sha256 == OLD_SHA
    assert len(seen) == 2 and out.fetched_bytes < 2 * len(BODY)


def test_a_crashed_runs_sidecar_keeps_the_total(tmp_path: Path) -> None:
    """A resumed run knows the total its partial was started from (the sidecar keeps it)."""
    async def go() -> None:
        paths = ArchivePaths(tmp_path)
        paths.create()
        it = item("http://127.0.0.1:9/f.bin")
        name = hashlib.sha256(it.key.encode()).hexdigest()[:40]
        (paths.partial / f"{name}.part").write_bytes(BODY[:1000])
        (paths.partial / f"{name}.json").write_text(json.dumps(
            {"url": "X", "etag": '"v1"', "last_modified": None, "total": len(BODY)}))
        calls: list[str | None] = []

        async def handler(request: web.Request) -> web.Response:
            calls.append(request.headers.get("Range"))
            if "Range" in request.headers:
                return web.Response(status=206, body=NEW[1000:], headers={
                    "ETag": '"v1"', "Content-Range": f"bytes 1000-{len(NEW) - 1}/{len(NEW) + 1}"})
            return whole_new()
        async with Server({"/f.bin": handler}) as srv:
            url = srv.url + "/f.bin"
            (paths.partial / f"{name}.json").write_text(json.dumps(
                {"url": url, "etag": '"v1"', "last_modified": None, "total": len(BODY)}))
            with ThreadPoolExecutor(2) as pool:
                async with aiohttp.ClientSession() as session:
                    fetcher = Fetcher(Http(session, Limits()), Placer(LocalStorage(paths.root)),
                                      paths.partial, pool, rand=lambda: 0.0)
                    out = await fetcher.fetch(item(url), JobFetch(2, 5.0, 1 << 30))
        assert calls == ["bytes=1000-", None]
        assert out.sha256 == NEW_SHA
    asyncio.run(go())


# --- trickles ------------------------------------------------------------------------------------


async def trickle(request: web.Request) -> web.StreamResponse:
    """A byte every 0.2 s of a body that promises 2 MiB: never silent long enough to time out."""
    resp = web.StreamResponse(headers={"Content-Length": str(2 << 20), "ETag": '"t"'})
    await resp.prepare(request)
    for _ in range(2 << 20):
        await resp.write(b"x")
        await asyncio.sleep(0.2)
    return resp


@pytest.mark.parametrize("size", [2 << 20, 1000])
def test_a_trickle_is_abandoned_below_min_speed(tmp_path: Path, size: int) -> None:
    async def go() -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(headers={"Content-Length": str(size), "ETag": '"t"'})
            await resp.prepare(request)
            for _ in range(size):
                await resp.write(b"x")
                await asyncio.sleep(0.2)
            return resp
        async with Server({"/t.bin": handler}) as srv:
            async with asyncio.timeout(60):  # the promise: the attempt ends, and soon
                out = await fetch(tmp_path, srv.url + "/t.bin", retries=1, timeout=1.0,
                                  min_speed=1024)
        assert out.status is Status.FAILED and "min_speed" in (out.error or "")
        assert len(srv.seen) == 2  # abandoned and retried like a timeout
        assert not archived(tmp_path, "t.bin").exists()
    asyncio.run(go())


def test_a_listing_that_trickles_is_abandoned(tmp_path: Path) -> None:
    async def go() -> None:
        async with Server({"/list.json": trickle}) as srv, aiohttp.ClientSession() as session:
            api = JobApi(Http(session, Limits()), retries=0, timeout=1.0, min_speed=1024)
            with pytest.raises(errors.RetryableError, match="min_speed"):
                async with asyncio.timeout(60):
                    await api.get_json(srv.url + "/list.json")
    asyncio.run(go())


@pytest.mark.parametrize("announced", [True, False])
def test_a_listing_past_the_cap_is_cut_off_early(monkeypatch: pytest.MonkeyPatch,
                                                 announced: bool) -> None:
    """A listing body past MAX_LISTING_BYTES, announced by Content-Length or endless, is
    refused as it comes (not after it is all read), naming the URL without its api_key."""
    monkeypatch.setattr(api, "MAX_LISTING_BYTES", 1 << 20)
    offered = 64 << 20  # what the server would send if nobody stopped reading
    sent: list[int] = []
    ended = asyncio.Event()

    async def endless(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Length": str(offered)} if announced else {}
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        total = 0
        try:
            while total < offered:
                await resp.write(b" " * (64 << 10))
                total += 64 << 10
        except ConnectionError:  # the client hung up: the point
            pass
        finally:
            sent.append(total)
            ended.set()
        return resp

    async def go() -> None:
        async with Server({"/list.json": endless}) as srv, aiohttp.ClientSession() as session:
            job_api = JobApi(Http(session, Limits()), retries=2, timeout=10.0)
            with pytest.raises(errors.BadResponseError, match="byte cap") as caught:
                async with asyncio.timeout(60):
                    await job_api.get_json(srv.url + "/list.json?api_key=KEY-SECRET-7")
            assert "/list.json" in caught.value.url and "KEY-SECRET-7" not in caught.value.url
            assert len(srv.seen) == 1  # not retried: another attempt gets the same answer
            async with asyncio.timeout(30):  # the handler sees the hang-up and ends
                await ended.wait()
        assert sent[0] < 32 << 20, sent  # cut off early, not read to the end
    asyncio.run(go())


def test_a_listing_page_of_tens_of_megabytes_is_held_about_twice(tmp_path: Path) -> None:
    """A 20 MB Spectrum page: its bytes are read into one buffer (not chunks joined) and its
    records go once mapped, so the bytes, the records and their asset.json are never all held
    at once. Measured with tracemalloc, which sees every Python allocation of this process;
    the server sends the page from a file with sendfile, outside them. (Before: ~3x traced,
    4x RSS in a run.)"""
    notes = "n" * 200_000
    page = tmp_path / "page.json"
    page.write_text(json.dumps({"error": None, "contents": [
        {"id": i, "notes": notes} for i in range(100)]}))
    size = page.stat().st_size

    async def listing(request: web.Request) -> web.StreamResponse:
        if request.query["page"] == "1":
            return web.FileResponse(page)
        return web.json_response({"error": None, "contents": []})

    async def go() -> None:
        async with Server({"/api/assets/saved/client/c/organization/o": listing}) as srv:
            http = Http(None, Limits(), Pool(GuardedResolver(), "test"))
            job = SpectrumJob(name="s", token="t", client="c", organizations=("o",),
                              base_url=srv.url)
            source = SpectrumSource(job, JobApi(http, retries=0, timeout=30.0),
                                    Store(tmp_path / "state.sqlite"))
            kept: list[list[Entry]] = []  # held, as the run holds them until written
            tracemalloc.start()
            try:
                async with asyncio.timeout(60):
                    async for batch in source.organization("o"):
                        kept.append(batch)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
                await http.close()
        assert sum(isinstance(e, Document) for b in kept for e in b) == 100
        assert peak < 2.4 * size, f"{peak / size:.2f}x the page"
    asyncio.run(go())


def test_our_own_bandwidth_cap_is_not_counted_as_a_slow_server(tmp_path: Path) -> None:
    """Waiting on ``bandwidth`` is our doing: min_speed measures the server, not the cap."""
    body = BODY[: 3 << 20]

    async def go() -> None:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body, headers={"ETag": '"b"'})
        async with Server({"/b.bin": handler}) as srv:
            out = await fetch(tmp_path, srv.url + "/b.bin", retries=0, timeout=0.5,
                              min_speed=4 << 20, bandwidth=1 << 20)
        assert out.status is Status.DOWNLOADED, out.error
    asyncio.run(go())


# --- Content-Encoding nobody asked for -----------------------------------------------------------


def gzip_server(body: bytes) -> dict[str, object]:
    packed = gzip.compress(body, mtime=0)

    async def handler(request: web.Request) -> web.Response:
        assert request.headers["Accept-Encoding"] == "identity"
        return web.Response(body=packed, headers={"Content-Encoding": "gzip", "ETag": '"g"'})
    return {"handler": handler, "packed": packed}


@pytest.mark.parametrize("size", [5000, 3 << 20])
def test_an_unasked_encoding_is_stored_as_sent_never_decoded(tmp_path: Path, size: int) -> None:
    body = BODY[:size]
    served = gzip_server(body)

    async def go() -> None:
        async with Server({"/g.bin": served["handler"]}) as srv:  # type: ignore[dict-item]
            out = await fetch(tmp_path, srv.url + "/g.bin")
        assert out.status is Status.DOWNLOADED
        assert archived(tmp_path, "g.bin").read_bytes() == served["packed"]
        assert out.sha256 == hashlib.sha256(served["packed"]).hexdigest()  # type: ignore[arg-type]
    asyncio.run(go())


def test_an_unasked_encoding_fails_a_listed_size(tmp_path: Path) -> None:
    served = gzip_server(BODY[:5000])

    async def go() -> None:
        async with Server({"/g.bin": served["handler"]}) as srv:  # type: ignore[dict-item]
            out = await fetch(tmp_path, srv.url + "/g.bin", retries=0, expected_size=5000)
        assert out.status is Status.FAILED and not archived(tmp_path, "g.bin").exists()
    asyncio.run(go())


# --- link-local addresses ------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["169.254.169.254", "[fe80::1]", "[::ffff:169.254.169.254]",
                                  "169.254.1.2:8080"])
def test_link_local_targets_are_refused_without_a_request(tmp_path: Path, host: str) -> None:
    async def go() -> None:
        async with asyncio.timeout(30):
            out = await fetch(tmp_path, f"http://{host}/latest/meta-data/x.json", retries=3)
        assert out.status is Status.FAILED
        assert "link-local" in (out.error or "")
    asyncio.run(go())


def test_a_numeric_host_form_is_refused_once(tmp_path: Path) -> None:
    """``2852039166`` is 169.254.169.254 to getaddrinfo; the URL parser refuses it first."""
    async def go() -> None:
        async with asyncio.timeout(30):
            out = await fetch(tmp_path, "http://2852039166/latest/meta-data/", retries=3)
        assert out.status is Status.FAILED and "network error" not in (out.error or "")
    asyncio.run(go())


def test_a_redirect_to_a_link_local_address_is_refused(tmp_path: Path) -> None:
    async def go() -> None:
        async def hop(request: web.Request) -> web.Response:
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data/iam/")
        async with Server({"/r.bin": hop}) as srv:
            out = await fetch(tmp_path, srv.url + "/r.bin", retries=3)
        assert out.status is Status.FAILED and "link-local" in (out.error or "")
        assert len(srv.seen) == 1  # refused at once: no retry can make it safe
    asyncio.run(go())


def test_allow_hosts_names_a_link_local_address() -> None:
    check_url("http://169.254.169.254/x", ("169.254.169.254",))
    check_url("http://169.254.169.254/x", (), trusted="169.254.169.254")  # the job's own API
    with pytest.raises(errors.UnsafeURLError, match="link-local"):
        check_url("http://169.254.169.254/x")
    with pytest.raises(errors.UnsafeURLError, match="not in allow_hosts"):
        check_url("http://169.254.169.254/x", ("example.com",))
    # Loopback and private networks stay allowed (sandboxes, proxies).
    for host in ("127.0.0.1", "10.0.0.1", "192.168.1.1", "[::1]", "localhost"):
        check_url(f"http://{host}/x")
    assert is_link_local("169.254.0.1") and is_link_local("fe80::abcd")
    assert not is_link_local("169.255.0.1") and not is_link_local("example.com")


def test_a_name_allowed_by_allow_hosts_resolves_to_link_local() -> None:
    async def go() -> None:
        allowed = GuardedResolver(frozenset({"2852039166"}))
        found = await allowed.resolve("2852039166", 80)
        assert found and found[0]["host"] == "169.254.169.254"
        with pytest.raises(errors.UnsafeURLError, match="link-local"):
            await GuardedResolver().resolve("2852039166", 80)
        assert await GuardedResolver().resolve("127.0.0.1", 80)
    asyncio.run(go())


# --- redirect loops ------------------------------------------------------------------------------


def test_a_redirect_loop_fails_the_item_without_further_attempts(tmp_path: Path) -> None:
    async def go() -> None:
        async def a(request: web.Request) -> web.Response:
            raise web.HTTPFound("/b.bin")

        async def b(request: web.Request) -> web.Response:
            raise web.HTTPFound("/a.bin")
        async with Server({"/a.bin": a, "/b.bin": b}) as srv:
            out = await fetch(tmp_path, srv.url + "/a.bin", retries=3)
        assert out.status is Status.FAILED and "loop" in (out.error or "")
        assert [s["path"] for s in srv.seen] == ["/a.bin", "/b.bin"]
    asyncio.run(go())


def test_too_many_redirects_fail_the_item_once(tmp_path: Path) -> None:
    async def go() -> None:
        async def hop(request: web.Request) -> web.Response:
            raise web.HTTPFound(f"/r{int(request.path[2:]) + 1}")
        async with Server({f"/r{i}": hop for i in range(30)}) as srv:
            out = await fetch(tmp_path, srv.url + "/r0", retries=3)
        assert out.status is Status.FAILED and "redirects" in (out.error or "")
        assert len(srv.seen) == 11  # the first request and 10 redirects, once
    asyncio.run(go())


# --- the manifest's min_speed ---------------------------------------------------------------------


def test_min_speed_is_a_setting_with_a_default(tmp_path: Path) -> None:
    from assetvault.config.manifest import load_manifest
    from assetvault.errors import ManifestError

    manifest = tmp_path / "jobs.yaml"
    manifest.write_text("version: 1\ndefaults:\n  min_speed: 2KiB\njobs:\n"
                        "  - {name: a, source: urls, urls_file: u.txt}\n"
                        "  - {name: b, source: urls, urls_file: u.txt, min_speed: 0}\n")
    (tmp_path / "u.txt").write_text("http://127.0.0.1:9/x\n")
    first, second = load_manifest(manifest).jobs
    assert first.settings.min_speed == 2048 and second.settings.min_speed == 0
    manifest.write_text("version: 1\njobs:\n  - {name: a, source: urls, urls_file: u.txt}\n")
    assert load_manifest(manifest).jobs[0].settings.min_speed == 1024
    manifest.write_text("version: 1\njobs:\n"
                        "  - {name: a, source: urls, urls_file: u.txt, min_speed: fast}\n")
    with pytest.raises(ManifestError, match="min_speed") as caught:
        load_manifest(manifest)
    assert "line 3" in str(caught.value)


def test_a_partial_is_not_left_behind_when_the_file_shrinks_to_a_small_one(
        tmp_path: Path) -> None:
    """A first attempt streams a large version and drops; the next answer is a small new
    version, read whole: the old partial and its sidecar go."""
    small = NEW[:5000]

    async def go() -> None:
        calls = {"n": 0}

        async def handler(request: web.Request) -> web.StreamResponse:
            calls["n"] += 1
            if calls["n"] == 1:
                return await half_then_drop(request, tmp_path)
            return web.Response(body=small, headers={"ETag": '"small"'})
        async with Server({"/s.bin": handler}) as srv:
            out = await fetch(tmp_path, srv.url + "/s.bin")
        assert out.status is Status.DOWNLOADED
        assert archived(tmp_path, "s.bin").read_bytes() == small
        assert not list((tmp_path / ".assetvault/partial").iterdir())
    asyncio.run(go())


def test_ipv6_hosts_can_be_named_in_allow_hosts(tmp_path: Path) -> None:
    from assetvault.config.manifest import load_manifest

    (tmp_path / "u.txt").write_text("http://127.0.0.1:9/x\n")
    manifest = tmp_path / "jobs.yaml"
    manifest.write_text('version: 1\njobs:\n  - {name: a, source: urls, urls_file: u.txt, '
                        'allow_hosts: ["FE80:0::1", "[fd00::2]", "169.254.169.254", cdn.x]}\n')
    hosts = load_manifest(manifest).jobs[0].allow_hosts
    assert hosts == ("fe80::1", "fd00::2", "169.254.169.254", "cdn.x")
    check_url("http://[fe80:0:0::1]:8080/x", hosts)
    check_url("http://[FD00::2]/x", hosts)
    with pytest.raises(errors.UnsafeURLError, match="not in allow_hosts"):
        check_url("http://[fd00::3]/x", hosts)


def test_a_redirect_to_an_unparsable_url_fails_the_item_plainly(tmp_path: Path) -> None:
    async def go() -> None:
        async def hop(request: web.Request) -> web.Response:
            return web.Response(status=302, headers={"Location": "http://[::1"})
        async with Server({"/r.bin": hop}) as srv:
            out = await fetch(tmp_path, srv.url + "/r.bin", retries=3)
        assert out.status is Status.FAILED and "cannot be parsed" in (out.error or "")
        assert len(srv.seen) == 1
    asyncio.run(go())


# --- withdrawn: --shard (SPEC section 6) ---------------------------------------------------------


def test_shard_is_withdrawn_on_the_command_line_and_in_the_manifest(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    (tmp_path / "u.txt").write_text("http://127.0.0.1:9/x\n")
    manifest = tmp_path / "jobs.yaml"
    manifest.write_text("version: 1\njobs:\n  - {name: a, source: urls, urls_file: u.txt}\n")
    result = run_cli("run", manifest, "--shard", "1/2")
    assert result.code == 2 and "--workers" in result.err and "--cluster" in result.err
    assert "Traceback" not in result.err and not (tmp_path / "archive").exists()
    for where in ("shard: 1/2\n", "defaults:\n  shard: 1/2\n"):
        manifest.write_text(f"version: 1\n{where}jobs:\n"
                            "  - {name: a, source: urls, urls_file: u.txt}\n")
        result = run_cli("run", manifest)
        assert result.code == 2 and "--workers" in result.err, result.err
    manifest.write_text("version: 1\njobs:\n"
                        "  - {name: a, source: urls, urls_file: u.txt, shard: 1/2}\n")
    result = run_cli("run", manifest)
    assert result.code == 2 and "--workers" in result.err and "line 3" in result.err


def test_206_with_unknown_total_and_another_etag_is_not_appended(tmp_path: Path) -> None:
    def answer(request: web.Request) -> web.Response:
        start = resumed_range(request)
        return web.Response(status=206, body=NEW[start:], headers={
            "ETag": '"v2"', "Content-Range": f"bytes {start}-{len(NEW) - 1}/*"})
    out, seen = run_resume(tmp_path, answer)
    assert out.sha256 == NEW_SHA and archived(tmp_path, "f.bin").read_bytes() == NEW
    assert "Range" not in seen[2]


def test_a_206_to_a_plain_request_is_not_the_whole_file(tmp_path: Path) -> None:
    async def go() -> None:
        calls = {"n": 0}

        async def handler(request: web.Request) -> web.Response:
            calls["n"] += 1
            if calls["n"] == 1:  # a first part, as if the client had asked for a range
                return web.Response(status=206, body=BODY[:1000], headers={
                    "ETag": '"v1"', "Content-Range": f"bytes 0-999/{len(BODY)}"})
            return web.Response(body=BODY, headers={"ETag": '"v1"'})
        async with Server({"/p.bin": handler}) as srv:
            out = await fetch(tmp_path, srv.url + "/p.bin")
        assert out.status is Status.DOWNLOADED and out.sha256 == OLD_SHA
        assert archived(tmp_path, "p.bin").read_bytes() == BODY
    asyncio.run(go())


def test_a_resumed_range_that_ends_early_is_never_recorded(tmp_path: Path) -> None:
    """A chunked 206 (no Content-Length) that stops before the total it named: only the size
    check against that total can tell."""

    async def go() -> None:
        calls = {"n": 0}

        async def handler(request: web.Request) -> web.StreamResponse:
            calls["n"] += 1
            if calls["n"] == 1:
                return await half_then_drop(request, tmp_path)
            if "Range" in request.headers:
                start = resumed_range(request)
                resp = web.StreamResponse(status=206, headers={
                    "ETag": '"v1"', "Content-Range": f"bytes {start}-{len(BODY) - 1}/{len(BODY)}"})
                resp.enable_chunked_encoding()
                await resp.prepare(request)
                await resp.write(BODY[start:start + 1000])
                await resp.write_eof()
                return resp
            return web.Response(body=BODY, headers={"ETag": '"v1"'})
        async with Server({"/e.bin": handler}) as srv:
            out = await fetch(tmp_path, srv.url + "/e.bin")
        assert out.status is Status.DOWNLOADED and out.sha256 == OLD_SHA
        assert archived(tmp_path, "e.bin").read_bytes() == BODY
    asyncio.run(go())
