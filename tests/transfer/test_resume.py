"""The resume decision, for any answer a server may give: the file that ends in ``data/`` is
byte-identical to one whole representation, or absent. Never a splice.

Each example: a partial file holding the first ``k`` bytes of version A (its sidecar names A's
ETag and total, as a crashed run leaves it), then a real loopback server answering the resumed
request with whatever hypothesis draws (200, 206 with any Content-Range, 416; any validators;
the body of A, of B, or noise), and every later request with version B whole. One rule binds
the server: an answer that names both A's validator and A's size carries A's bytes (nothing could
tell a server that lies about both from an honest one, and a checksum is not always there).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assetvault.archive.paths import ArchivePaths
from assetvault.archive.placer import Placer
from assetvault.models import Item, Status
from assetvault.net.http import Http
from assetvault.net.limits import Limits
from assetvault.storage import LocalStorage
from assetvault.transfer.fetch import Fetcher, JobFetch

A = bytes((i * 7 + 3) % 251 for i in range(3000))
B = bytes((i * 11 + 5) % 241 for i in range(3000))  # a new version of the same size
C = bytes((i * 13 + 1) % 239 for i in range(2600))  # ... and one of another size
A_TAG, B_TAG = '"a-1"', '"b-2"'


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@st.composite
def answers(draw: st.DrawFn, offset: int) -> Answer:
    status = draw(st.sampled_from([200, 206, 206, 206, 416]))
    etag = draw(st.sampled_from([A_TAG, B_TAG, None, 'W/"a-1"', '"zzz"']))
    headers: dict[str, str] = {}
    if etag is not None:
        headers["ETag"] = etag
    if draw(st.booleans()):
        headers["Last-Modified"] = draw(st.sampled_from(
            ["Mon, 01 Jan 2024 00:00:00 GMT", "Tue, 02 Jan 2024 00:00:00 GMT"]))
    source = draw(st.sampled_from([A, B, C]))
    if status == 200:
        return Answer(200, headers, A if etag == A_TAG else source)
    if status == 416:
        headers["Content-Range"] = f"bytes */{len(source)}"
        return Answer(416, headers, b"")
    if draw(st.booleans()):  # plausible: from the offset asked to the end of its total
        start, end, total = min(offset, len(source)), len(source), str(len(source))
    else:
        start = min(len(source), draw(st.sampled_from(
            [offset, 0, offset + 1, max(0, offset - 1), draw(st.integers(0, len(source)))])))
        end = draw(st.sampled_from([len(source), draw(st.integers(start, len(source)))]))
        total = draw(st.sampled_from([str(len(source)), str(len(A)), str(len(C)), "*",
                                      str(draw(st.integers(1, 5000)))]))
    if etag == A_TAG and total == str(len(A)):
        source = A  # naming A's validator and A's size, it is A
    body = source[start:end]
    form = draw(st.sampled_from(["good", "good", "good", "missing", "garbage"]))
    if form == "good" and end > start:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{total}"
    elif form == "garbage":
        headers["Content-Range"] = draw(st.sampled_from(["bytes", "items 0-1/2", "bytes 5-2/9",
                                                         "bytes -1-3/4"]))
    return Answer(206, headers, body)


class Upstream:
    """A loopback server in its own thread. The scripted answer goes to the first request and
    to every request with ``Range`` (a hostile server is hostile every time); any other
    request gets B whole."""

    def __init__(self) -> None:
        self.first: Answer | None = None
        self.requests = 0
        self.whole_bodies: list[bytes] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        answer = self.first
        if answer is None or (self.requests and "Range" not in request.headers):
            answer = Answer(200, {"ETag": B_TAG}, B)
        self.requests += 1
        whole = f"bytes 0-{len(answer.body) - 1}/{len(answer.body)}"
        if answer.status == 200 or (answer.headers.get("Content-Range") == whole
                                    and "Range" not in request.headers):
            # A 200, or a 206 to a plain request that covers its whole named total, is the
            # server's word for one whole representation.
            self.whole_bodies.append(answer.body)
        return web.Response(status=answer.status, headers=answer.headers, body=answer.body)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/f.bin", self._handle)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/f.bin"
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())

    def __enter__(self) -> Upstream:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


async def _fetch(root: Path, url: str) -> Status:
    paths = ArchivePaths(root)
    paths.create()
    it = Item(key="k/f.bin", job="j", url=url, path="files/f.bin")
    with ThreadPoolExecutor(2) as pool:
        async with aiohttp.ClientSession() as session:
            fetcher = Fetcher(Http(session, Limits()), Placer(LocalStorage(paths.root)),
                              paths.partial, pool, rand=lambda: 0.0)
            out = await fetcher.fetch(it, JobFetch(2, 5.0, 1 << 30))
    return out.status


def _leave_partial(root: Path, url: str, k: int) -> None:
    partial = ArchivePaths(root).partial
    partial.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(b"k/f.bin").hexdigest()[:40]
    (partial / f"{name}.part").write_bytes(A[:k])
    (partial / f"{name}.json").write_text(json.dumps(
        {"url": url, "etag": A_TAG, "last_modified": None, "total": len(A)}))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), k=st.integers(0, len(A) - 1))
def test_resume_never_splices(upstream: Upstream, data: st.DataObject, k: int) -> None:
    """``k`` 0: no partial (a plain request that gets the drawn answer)."""
    answer = data.draw(answers(k))
    upstream.first, upstream.requests, upstream.whole_bodies = answer, 0, []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if k:
            _leave_partial(root, upstream.url, k)
        status = asyncio.run(_fetch(root, upstream.url))
        final = root / "data/files/f.bin"
        # Integrity: one whole representation (B, or what a 200 called whole), or nothing.
        if final.exists():
            got = final.read_bytes()
            assert got in (A, B, *upstream.whole_bodies), (
                f"spliced: {len(got)} bytes from {answer.status} {answer.headers}")
        # Liveness: a plain request after the first always gets B whole here, so every
        # refusal and restart ends in a complete file (a 416 to a plain GET is the server's
        # own error, and fails the item).
        if not (k == 0 and answer.status == 416):
            assert status is Status.DOWNLOADED, (answer.status, answer.headers)
