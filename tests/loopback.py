"""A tiny HTTP server of a test's own, on 127.0.0.1 in a thread: for what the sandbox cannot do
(answer only the very first request with a refusal, hold a body until the test says so).

Every request is logged with its arrival time (``time.monotonic()``, the test's own clock).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import NamedTuple

import aiohttp
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
START_TIMEOUT = 10.0


class Arrival(NamedTuple):
    time: float
    path: str
    headers: dict[str, str]


class Loopback:
    """``with Loopback(handler) as server:`` serves ``handler`` for every GET at ``server.url``."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.arrivals: list[Arrival] = []
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="loopback", daemon=True)
        self._error: BaseException | None = None

    def __enter__(self) -> Loopback:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise TimeoutError("the loopback server did not start")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        loop = self._loop
        if loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(START_TIMEOUT)
            loop.call_soon_threadsafe(loop.stop)
        self._thread.join(START_TIMEOUT)

    def paths(self) -> list[str]:
        return [a.path for a in self.arrivals]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.arrivals.append(Arrival(time.monotonic(), request.path_qs, dict(request.headers)))
        return await self._handler(request)

    def _main(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._start())
        except BaseException as exc:  # reported to __enter__
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"


FORWARDED = ("Accept", "SPECTRUM_API_TOKEN", "X-TASTEVIN-VERSION", "Range", "If-Range")


async def forward(request: web.Request, upstream: str, path_qs: str | None = None
                  ) -> web.Response:
    """The upstream's answer to the same GET, or to ``path_qs`` in its place (status, body,
    type and validators)."""
    headers = {k: v for k in FORWARDED if (v := request.headers.get(k)) is not None}
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session, \
            session.get(upstream + (path_qs or request.path_qs), headers=headers,
                        allow_redirects=False) as answer:
        body = await answer.read()
        kept = {k: v for k in ("ETag", "Last-Modified", "Content-Range")
                if (v := answer.headers.get(k)) is not None}
        return web.Response(status=answer.status, body=body, headers=kept,
                            content_type=answer.content_type)
