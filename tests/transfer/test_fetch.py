"""The fetcher against a real loopback server whose misbehaviour each test chooses."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from assetvault.archive.paths import ArchivePaths
from assetvault.archive.placer import Placer
from assetvault.models import Item, Outcome, Status
from assetvault.net.http import Credentials, Http
from assetvault.net.limits import Limits
from assetvault.net.origin import origin_of
from assetvault.storage import LocalStorage
from assetvault.transfer.fetch import Fetcher, JobFetch

BODY = bytes(range(256)) * 4096 * 8  # 8 MiB
SHA = hashlib.sha256(BODY).hexdigest()
MD5_B64 = base64.b64encode(hashlib.md5(BODY).digest()).decode()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """A real aiohttp server on an ephemeral port that records what it was sent."""

    def __init__(self, routes: dict[str, Handler]) -> None:
        self.app = web.Application()
        self.seen: list[dict[str, str]] = []
        for path, handler in routes.items():
            self.app.router.add_get(path, self._record(handler))
        self.runner = web.AppRunner(self.app)
        self.url = ""

    def _record(self, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            self.seen.append({"path": request.path, "query": request.query_string,
                              **{k: v for k, v in request.headers.items()}})
            return await handler(request)
        return wrapped

    async def __aenter__(self) -> Server:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


def item(url: str, **kw: Any) -> Item:
    return Item(key="k/" + url.rsplit("/", 1)[-1], job="j", url=url,
                path="files/" + url.rsplit("/", 1)[-1], **kw)


async def fetch(tmp: Path, it: Item, *, retries: int = 3, credentials: Credentials | None = None,
                max_size: int = 1 << 30) -> Outcome:
    paths = ArchivePaths(tmp)
    paths.create()
    with ThreadPoolExecutor(2) as pool:
        async with aiohttp.ClientSession() as session:
            fetcher = Fetcher(Http(session, Limits()), Placer(LocalStorage(paths.root)),
                              paths.partial, pool, rand=lambda: 0.0)
            return await fetcher.fetch(it, JobFetch(retries, 5.0, max_size, credentials))


def full(request: web.Request, *, etag: str = '"v1"', extra: dict[str, str] | None = None,
         body: bytes = BODY) -> web.Response:
    rng = request.headers.get("Range")
    headers = {"ETag": etag, "Accept-Ranges": "bytes", **(extra or {})}
    if rng and request.headers.get("If-Range") in (None, etag):
        start = int(rng.removeprefix("bytes=").split("-")[0])
        headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
        return web.Response(status=206, body=body[start:], headers=headers)
    return web.Response(body=body, headers=headers)


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait for a condition, at most ``seconds``."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - the condition is a file on disk
            await asyncio.sleep(0.01)


def partial_bytes(tmp: Path) -> int:
    return sum(p.stat().st_size for p in (tmp / ".assetvault/partial").glob("*.part"))


async def truncated_once(request: web.Request, state: dict[str, int], tmp: Path,
                         then: Callable[[web.Request], web.StreamResponse] | None = None
                         ) -> web.StreamResponse:
    """First request: headers promise 8 MiB; once the client has put some on disk, the
    connection drops. Later requests get ``then`` (the whole file by default)."""
    state["n"] = state.get("n", 0) + 1
    if state["n"] > 1:
        return (then or full)(request)
    return await half_then_drop(request, tmp)


async def half_then_drop(request: web.Request, tmp: Path, etag: str = '"v1"'
                         ) -> web.StreamResponse:
    """Promise the whole of BODY, send half, and once it is on disk drop the connection."""
    resp = web.StreamResponse(headers={"ETag": etag, "Content-Length": str(len(BODY))})
    await resp.prepare(request)
    await resp.write(BODY[: len(BODY) // 2])
    await until(lambda: partial_bytes(tmp) > 0)
    assert request.transport is not None
    request.transport.close()
    return resp


def test_downloads_and_hashes(tmp_path: Path) -> None:
    async def go() -> None:
        async def h(r: web.Request) -> web.Response:
            return full(r, extra={"Content-MD5": MD5_B64})
        async with Server({"/a.bin": h}) as srv:
            out = await fetch(tmp_path, item(srv.url + "/a.bin"))
        assert out.status is Status.DOWNLOADED and out.sha256 == SHA and out.size == len(BODY)
        assert (tmp_path / "data/files/a.bin").read_bytes() == BODY
        assert srv.seen[0]["Accept-Encoding"] == "identity"
        assert not list((tmp_path / ".assetvault/partial").iterdir())
    asyncio.run(go())


def test_resumes_with_range_and_if_range_after_a_drop(tmp_path: Path) -> None:
    async def go() -> None:
        state: dict[str, int] = {}
        async def h(r: web.Request) -> web.StreamResponse:
            return await truncated_once(r, state, tmp_path)
        async with Server({"/big.bin": h}) as srv:
            out = await fetch(tmp_path, item(srv.url + "/big.bin"))
        assert out.status is Status.DOWNLOADED and out.sha256 == SHA
        second = srv.seen[1]
        assert second["Range"].startswith("bytes=") and int(second["Range"][6:-1]) > 0
        assert second["If-Range"] == '"v1"'
    asyncio.run(go())


def test_200_instead_of_206_restarts_cleanly(tmp_path: Path) -> None:
    async def go() -> None:
        state: dict[str, int] = {}
        async def h(r: web.Request) -> web.StreamResponse:
            return await truncated_once(r, state, tmp_path, lambda r: web.Response(
                body=BODY, headers={"ETag": '"v1"'}))  # ignores Range
        async with Server({"/x.bin": h}) as srv:
            out = await fetch(tmp_path, item(srv.url + "/x.bin"))
        assert out.status is Status.DOWNLOADED and out.sha256 == SHA
    asyncio.run(go())


def test_content_range_at_the_wrong_offset_restarts(tmp_path: Path) -> None:
    async def go() -> None:
        state: dict[str, int] = {}
        def wrong_offset(r: web.Request) -> web.StreamResponse:
            if "Range" in r.headers:
                return web.Response(status=206, body=BODY[10:], headers={
                    "ETag": '"v1"', "Content-Range": f"bytes 10-{len(BODY) - 1}/{len(BODY)}"})
            return full(r)
        async def h(r: web.Request) -> web.StreamResponse:
            return await truncated_once(r, state, tmp_path, wrong_offset)
        async with Server({"/x.bin": h}) as srv:
            out = await fetch(tmp_path, item(srv.url + "/x.bin"))
        assert out.status is Status.DOWNLOADED and out.sha256 == SHA
        assert "Range" not in srv.seen[-1]
    asyncio.run(go())


def test_416_fetches_again_from_zero(tmp_path: Path) -> None:
    async def go() -> None:
        state: dict[str, int] = {}
        def unsatisfiable(r: web.Request) -> web.StreamResponse:
            if "Range" in r.headers:
                return web.Response(status=416, headers={"Content-Range": f"bytes */{len(BODY)}"})
            return full(r)
        async def h(r: web.Request) -> web.StreamResponse:
            return await truncated_once(r, state, tmp_path, unsatisfiable)
        async with Server({"/x.bin": h}) as srv:
            out = await fetch(tmp_path, item(srv.url + "/x.bin"))
        assert out.status is Status.DOWNLOADED and out.sha256 == SHA
    asyncio.run(go())


def test_wrong_md5_is_retried_then_failed_and_never_placed(tmp_path: Path) -> None:
    async def go() -> None:
        bad = base64.b64encode(b"0" * 16).decode()
        async def h(r: web.Request) -> web.Response:
            return full(r, extra={"Content-MD5": bad})
        async with Server({"/x.bin": h}) as srv:
            out = await fetch(tmp_path, item(srv.url + "/x.bin"), retries=2)
        assert out.status is Status.FAILED and "MD5" in (out.error or "")
        assert len(srv.seen) == 3
        assert not (tmp_path / "data/files/x.bin").exists()
    asyncio.run(go())


def test_md5_etag_checked_only_when_the_source_says_so(tmp_path: Path) -> None:
    async def go() -> None:
        async def h(r: web.Request) -> web.Response:
            return full(r, etag='"' + "f" * 32 + '"')
        async with Server({"/x.bin": h, "/y.bin": h}) as srv:
            trusted = await fetch(tmp_path, item(srv.url + "/x.bin", etag_is_md5=True), retries=0)
            opaque = await fetch(tmp_path, item(srv.url + "/y.bin"), retries=0)
        assert trusted.status is Status.FAILED and opaque.status is Status.DOWNLOADED
    asyncio.run(go())


def test_listed_size_mismatch_fails(tmp_path: Path) -> None:
    async def go() -> None:
        async def h(r: web.Request) -> web.Response:
            return full(r)
        async with Server({"/x.bin": h}) as srv:
            out = await fetch(tmp_path, item(srv.url + "/x.bin", expected_size=5), retries=1)
        assert out.status is Status.FAILED and "API lists 5" in (out.error or "")
    asyncio.run(go())


def test_client_errors_fail_at_once(tmp_path: Path) -> None:
    async def go() -> None:
        async def h(r: web.Request) -> web.Response:
            return web.Response(status=404)
        async with Server({"/x.bin": h}) as srv:
            out = await fetch(tmp_path, item(srv.url + "/x.bin"), retries=5)
        assert out.status is Status.FAILED and "404" in (out.error or "")
        assert len(srv.seen) == 1
    asyncio.run(go())


def test_only_http_and_https_are_fetched(tmp_path: Path) -> None:
    async def go() -> None:
        for url in ("file:///etc/passwd", "ftp://h/x", "data:,hello", "", "relative/x.png"):
            out = await fetch(tmp_path, Item("k", "j", url, "x"))
            assert out.status is Status.FAILED and "refused" in (out.error or "")
    asyncio.run(go())


def test_max_file_size(tmp_path: Path) -> None:
    async def go() -> None:
        async def h(r: web.Request) -> web.Response:
            return full(r)
        async with Server({"/x.bin": h}) as srv:
            out = await fetch(tmp_path, item(srv.url + "/x.bin"), max_size=1000)
        assert out.status is Status.FAILED and "max_file_size" in (out.error or "")
    asyncio.run(go())


def test_credentials_stay_on_their_origin_across_redirects(tmp_path: Path) -> None:
    async def go() -> None:
        async def h(r: web.Request) -> web.Response:
            return full(r)
        async with Server({"/x.bin": h}) as other:
            async def redirect(r: web.Request) -> web.Response:
                raise web.HTTPFound(other.url + "/x.bin")
            async with Server({"/go": redirect}) as api:
                creds = Credentials(origin_of(api.url), {"SPECTRUM_API_TOKEN": "tok-secret"},
                                    {"api_key": "key-secret"})
                out = await fetch(tmp_path, item(api.url + "/go"), credentials=creds)
        assert out.status is Status.DOWNLOADED
        assert api.seen[0]["SPECTRUM_API_TOKEN"] == "tok-secret"
        assert "api_key=key-secret" in api.seen[0]["query"]
        landed = other.seen[0]
        assert "SPECTRUM_API_TOKEN" not in landed and "key-secret" not in landed["query"]
    asyncio.run(go())


def test_an_api_redirect_to_another_origin_carries_no_credentials() -> None:
    from assetvault.net.api import JobApi

    async def go() -> None:
        async def listing(r: web.Request) -> web.Response:
            return web.json_response({"ok": True})
        async with Server({"/list": listing}) as other:
            async def redirect(r: web.Request) -> web.Response:
                raise web.HTTPFound(other.url + "/list")
            async with Server({"/list": redirect}) as api:
                creds = Credentials(origin_of(api.url), {"SPECTRUM_API_TOKEN": "tok-secret"})
                async with aiohttp.ClientSession() as session:
                    jobapi = JobApi(Http(session, Limits()), retries=0, timeout=5,
                                    credentials=creds)
                    got = await jobapi.get_json(api.url + "/list", headers={
                        "SPECTRUM_API_TOKEN": "tok-secret", "X-Secret": "hdr-secret"})
        assert got == {"ok": True}
        assert api.seen[0]["SPECTRUM_API_TOKEN"] == "tok-secret"
        landed = other.seen[0]
        assert "SPECTRUM_API_TOKEN" not in landed and "X-Secret" not in landed
    asyncio.run(go())


def test_a_redirect_that_repeats_our_query_loses_the_api_key() -> None:
    from assetvault.net.api import JobApi

    async def go() -> None:
        async def listing(r: web.Request) -> web.Response:
            return web.json_response({"assets": []})
        async with Server({"/products/1/assets.json": listing}) as other:
            async def redirect(r: web.Request) -> web.Response:
                raise web.HTTPTemporaryRedirect(f"{other.url}{r.path_qs}")
            async with Server({"/products/1/assets.json": redirect}) as api:
                creds = Credentials(origin_of(api.url), {"X-TASTEVIN-VERSION": "1.2"},
                                    {"api_key": "key-secret-77"})
                async with aiohttp.ClientSession() as session:
                    jobapi = JobApi(Http(session, Limits()), retries=0, timeout=5,
                                    credentials=creds)
                    await jobapi.get_json(api.url + "/products/1/assets.json",
                                          params={"api_key": "key-secret-77", "page": "2"})
        assert "key-secret-77" in api.seen[0]["query"]
        assert "key-secret-77" not in other.seen[0]["query"]
        assert "page=2" in other.seen[0]["query"]
    asyncio.run(go())
