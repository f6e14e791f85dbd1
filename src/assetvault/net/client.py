"""The download path's HTTP/1.1 client: kept-alive connections per origin, each response
parsed by llhttp (through httptools) as it arrives, its body handed over as received.

Files are fetched here, not through aiohttp's ClientSession, for what a request costs: 5,000
GETs of 16 KiB took 1.3 CPU-seconds through ClientSession and 0.35 through this path on this
machine (its cookie jar, tracing, URL and header building, timers and stream readers run per
request; a file download needs none of them). The API calls, which want decoded JSON, stay
on aiohttp (``session``). Both resolve names through the run's guarded resolver.

A download takes the server's bytes as sent: nothing is decoded here, whatever the
Content-Encoding. Every wait is bounded: connecting and receiving the head by the caller
(``Http``), the body by an idle deadline of ``timeout`` seconds without a byte.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import functools
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from .origin import GuardedResolver

MAX_HEAD = 64 * 1024  # bytes of status line and headers; aiohttp allows 8 KiB a line
MAX_FIELDS = 256
HIGH_WATER = 4 << 20  # body bytes waiting to be taken before the socket is paused
IDLE = 30.0  # seconds a kept-alive connection is reused after its last response
DEFAULT_PORTS = {"http": 80, "https": 443}
_REUSABLE_EMPTY = frozenset({204, 304})


class WireError(Exception):
    """The connection or the response broke (reset, truncated, malformed, too slow): the
    caller retries, as for any network error."""


class Response:
    """One response: status and headers at once, the body as it arrives."""

    def __init__(self, conn: _Conn, url: str, status: int, reason: str,
                 headers: CIMultiDictProxy[str], content_length: int | None) -> None:
        self.url = url
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content_length = content_length
        self._conn = conn

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes in the pieces they arrived in; WireError if it breaks off."""
        conn = self._conn
        while True:
            chunk = conn.take()
            if chunk is not None:
                yield chunk
            elif conn.finished:
                return
            else:
                await conn.wait()

    def release(self) -> None:
        """Done with the response: its connection is kept for the next request when the body
        was read to its end, else closed."""
        self._conn.release()


class Pool:
    """Connections by origin; one request at a time on each."""

    def __init__(self, resolver: GuardedResolver, user_agent: str) -> None:
        self.resolver = resolver
        self.agent = user_agent
        self._idle: dict[tuple[str, str, int], collections.deque[_Conn]] = {}
        self._ssl: ssl.SSLContext | None = None

    async def get(self, url: str, headers: Mapping[str, str],
                  params: Mapping[str, str] | None, timeout: float) -> Response:
        """GET ``url``; returns once the head is in (the caller bounds that wait)."""
        target = _parse(url, params)
        key = (target.scheme, target.raw_host or "", target.port or 0)
        head = self._head(target, headers)
        while (conn := self._reuse(key)) is not None:
            # A kept connection the server has just closed fails before its first byte:
            # the request goes again on a fresh one (a GET may always be repeated).
            try:
                return await conn.request(head, str(target), timeout)
            except WireError:
                if conn.answered:
                    raise
        conn = await self._connect(key, target, timeout)
        return await conn.request(head, str(target), timeout)

    def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    def _reuse(self, key: tuple[str, str, int]) -> _Conn | None:
        conns = self._idle.get(key)
        loop = asyncio.get_running_loop()
        while conns:
            conn = conns.pop()
            if conn.reusable and loop.time() - conn.idle_since < IDLE:
                return conn
            conn.close()
        return None

    def _keep(self, conn: _Conn) -> None:
        conn.idle_since = asyncio.get_running_loop().time()
        self._idle.setdefault(conn.key, collections.deque()).append(conn)

    def _head(self, url: URL, headers: Mapping[str, str]) -> bytes:
        host = url.raw_host or ""
        if ":" in host:
            host = f"[{host}]"
        if url.explicit_port is not None and url.port != DEFAULT_PORTS.get(url.scheme):
            host = f"{host}:{url.port}"
        lines = [f"GET {url.raw_path_qs} HTTP/1.1", f"Host: {host}",
                 f"User-Agent: {self.agent}", "Accept: */*"]
        if url.user is not None:  # as aiohttp sends a URL's credentials
            pair = f"{url.user}:{url.password or ''}".encode()
            lines.append(f"Authorization: Basic {base64.b64encode(pair).decode()}")
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        if any("\r" in line or "\n" in line for line in lines):
            raise ValueError("a header or the URL holds a line break")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _connect(self, key: tuple[str, str, int], url: URL, timeout: float) -> _Conn:
        loop = asyncio.get_running_loop()
        host, port = key[1], key[2]
        tls = self._context() if key[0] == "https" else None
        last: BaseException | None = None
        for address in await self._addresses(host, port):
            try:
                async with asyncio.timeout(timeout):
                    _, conn = await loop.create_connection(
                        lambda: _Conn(self, key), address, port, ssl=tls,
                        server_hostname=host if tls is not None else None)
                return conn
            except (OSError, TimeoutError) as exc:
                last = exc
        raise WireError(_connect_failure(host, port, last))

    async def _addresses(self, host: str, port: int) -> list[str]:
        if _is_ip(host):
            return [host]
        try:
            found = await self.resolver.resolve(host, port, socket.AF_UNSPEC)
        except OSError as exc:
            raise WireError(f"cannot resolve {host}: {exc.strerror or exc}") from None
        return [str(r["host"]) for r in found]

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl


class _Conn(asyncio.Protocol):
    """One connection and the response it is receiving (llhttp calls the ``on_*`` methods)."""

    def __init__(self, pool: Pool, key: tuple[str, str, int]) -> None:
        self.key = key
        self.idle_since = 0.0
        self.answered = False  # a byte of the current response arrived
        self.finished = False  # the current body is complete, or broke off (``_error``)
        self._pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._head_ready: asyncio.Future[Response] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._body: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._error: WireError | None = None
        self._fields: list[tuple[str, str]] = []
        self._reason = ""
        self._head_bytes = 0
        self._url = ""
        self._until_eof = False
        self._complete = False
        self._idle_timeout = 0.0
        self._last = 0.0
        self._dirty = False  # bytes came past the end of a response
        self._keep_alive = False
        self._timer: asyncio.TimerHandle | None = None

    @property
    def reusable(self) -> bool:
        return (self._transport is not None and not self._transport.is_closing()
                and not self._dirty)

    # the request --------------------------------------------------------------------------

    async def request(self, head: bytes, url: str, timeout: float) -> Response:
        assert self._transport is not None
        self._reset(url, timeout)
        self._head_ready = self._loop.create_future()
        self._transport.write(head)
        try:
            return await self._head_ready
        except BaseException:
            self.close()
            raise

    def _reset(self, url: str, timeout: float) -> None:
        self.answered = self.finished = self._complete = self._until_eof = False
        self._keep_alive = False
        self._error = None
        self._fields, self._reason, self._head_bytes, self._url = [], "", 0, url
        self._idle_timeout = timeout

    def take(self) -> bytes | None:
        if self._body:
            chunk = self._body.popleft()
            self._buffered -= len(chunk)
            if self._paused and self._buffered < HIGH_WATER // 2 and self._transport:
                self._paused = False
                self._transport.resume_reading()
            return chunk
        if self._error is not None:
            raise self._error
        return None

    async def wait(self) -> None:
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def release(self) -> None:
        self._stop_timer()
        if self._complete and self._keep_alive and self._error is None and not self._body \
                and self.reusable:
            self._pool._keep(self)
        else:
            self.close()

    def close(self) -> None:
        self._stop_timer()
        if self._transport is not None:
            self._transport.abort()
            self._transport = None

    # asyncio ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        if self._head_ready is None or self.finished:
            # Bytes nobody asked for (after a response, or on an idle connection): the
            # stream can no longer be trusted to start where the next response does.
            self.close()
            return
        self.answered = True
        self._last = self._loop.time()
        if not self._head_ready.done():
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("the server switched protocols")
        except httptools.HttpParserError as exc:
            self._fail(f"malformed response: {exc}")
        if self._head_bytes > MAX_HEAD and not self._head_ready.done():
            self._fail(f"response head over {MAX_HEAD // 1024} KiB")

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._head_ready is None or self.finished:
            return
        if self._until_eof and self._head_ready.done():
            self._end()  # a body without length or chunks ends with its connection
            return
        self._fail("the connection closed before the response was complete")

    # llhttp -------------------------------------------------------------------------------
    # After a response is complete the parser reads on into whatever follows it: those bytes
    # are no part of it (a chunked body has no length to catch them), and the connection is
    # not reused.

    def on_message_begin(self) -> None:
        if self._complete:
            self._dirty = True

    def on_status(self, reason: bytes) -> None:
        if not self._complete:
            self._reason += reason.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._complete:
            return
        self._fields.append((name.decode("latin-1"), value.decode("latin-1")))
        if len(self._fields) > MAX_FIELDS:
            self._fail(f"more than {MAX_FIELDS} header fields")

    def on_headers_complete(self) -> None:
        if self._complete:
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            self._fields, self._reason = [], ""  # an interim answer: the real one follows
            return
        headers = CIMultiDictProxy(CIMultiDict(self._fields))
        length = _length(headers)
        chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        self._until_eof = length is None and not chunked and status not in _REUSABLE_EMPTY
        response = Response(self, self._url, status, self._reason.strip(), headers,
                             length if not chunked else None)
        self._timer = self._loop.call_at(self._last + self._idle_timeout, self._check_idle)
        assert self._head_ready is not None
        if not self._head_ready.done():
            self._head_ready.set_result(response)

    def on_body(self, body: bytes) -> None:
        if self.finished:
            return
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered >= HIGH_WATER and not self._paused and self._transport:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self._complete and self._parser.get_status_code() >= 200:
            # Asked here: once the message is over the parser forgets its Connection header.
            self._keep_alive = self._parser.should_keep_alive()
            self._complete = True
            self._end()

    # ends ---------------------------------------------------------------------------------

    def _end(self) -> None:
        self.finished = True
        self._stop_timer()
        self._wake()

    def _fail(self, reason: str) -> None:
        if self.finished:
            return
        self._error = WireError(reason)
        if self._head_ready is not None and not self._head_ready.done():
            self._head_ready.set_exception(self._error)
        self._end()
        self.close()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _check_idle(self) -> None:
        # One timer per response, moved on lazily: a byte costs a clock read, not a timer.
        self._timer = None
        now = self._loop.time()
        if self._paused:
            self._last = now  # we are the slow side, not the server
        if now - self._last >= self._idle_timeout:
            self._fail(f"no data for {self._idle_timeout:g} s")
        else:
            self._timer = self._loop.call_at(self._last + self._idle_timeout,
                                             self._check_idle)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _parse(url: str, params: Mapping[str, str] | None) -> URL:
    parsed = URL(url)
    if params:
        parsed = parsed.extend_query(params)
    if parsed.scheme not in DEFAULT_PORTS or not parsed.raw_host:
        raise ValueError(f"not an http(s) URL with a host: {parsed.scheme!r}")
    return parsed.with_fragment(None)


def _length(headers: CIMultiDictProxy[str]) -> int | None:
    values = headers.getall("Content-Length", [])
    if not values:
        return None
    # llhttp has refused a list of different lengths; equal repeats are one length.
    value = values[0].split(",")[0].strip()
    return int(value) if value.isdigit() else None


@functools.lru_cache(maxsize=256)
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _connect_failure(host: str, port: int, exc: BaseException | None) -> str:
    if isinstance(exc, TimeoutError):
        return f"connecting to {host}:{port} timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the TLS certificate of {host} was refused: {exc.verify_message}"
    if isinstance(exc, OSError):
        return f"cannot connect to {host}:{port}: {exc.strerror or exc}"
    return f"cannot connect to {host}:{port}"

