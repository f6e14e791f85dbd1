"""The download path's HTTP/1.1 client: kept-alive connections per origin (``connection``
parses each response as it arrives and hands its body over as received).

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
import re
import socket
import ssl
from collections.abc import Mapping
from typing import NamedTuple

from .connection import Chunk, Connection, Key, Response, WireError
from .origin import DEFAULT_PORTS, GuardedResolver

__all__ = ["Chunk", "Pool", "Response", "WireError"]

_PLAIN = re.compile(r"(https?)://([a-z0-9.-]+)(?::([0-9]{1,5}))?"
                    r"(/[A-Za-z0-9._~!$&'()*+,;=:@/-]*)?(\?[A-Za-z0-9._~!$&'()*+,;=:@/?-]*)?")
IDLE = 30.0  # seconds a kept-alive connection is reused after its last response
MAX_IDLE = 256  # parked connections, all origins together, that start a sweep
KEEP = MAX_IDLE // 2  # the most recent kept by a sweep


class Pool:
    """Connections by origin; one request at a time on each."""

    def __init__(self, resolver: GuardedResolver, user_agent: str) -> None:
        self.resolver = resolver
        self.agent = user_agent
        self._idle: dict[Key, collections.deque[Connection]] = {}
        self._parked = 0  # connections parked since the last sweep
        self._swept = 0.0
        self._ssl: ssl.SSLContext | None = None

    async def get(self, url: str, headers: Mapping[str, str],
                  params: Mapping[str, str] | None, timeout: float) -> Response:
        """GET ``url``; returns once the head is in (the connection bounds that wait)."""
        target = target_of(url, params)
        key = (target.scheme, target.host, target.port)
        head = self._head(target, headers)
        while (conn := self._reuse(key)) is not None:
            # A kept connection the server has just closed fails before its first byte:
            # the request goes again on a fresh one (a GET may always be repeated).
            try:
                return await conn.request(head, target.text, timeout)
            except WireError:
                if not conn.dropped:  # a timeout or a broken answer is the server's
                    raise
        conn = await self._connect(key, timeout)
        return await conn.request(head, target.text, timeout)

    def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    def _reuse(self, key: Key) -> Connection | None:
        conns = self._idle.get(key)
        now = asyncio.get_running_loop().time()
        while conns:
            conn = conns.pop()
            if not conns:
                del self._idle[key]
            if conn.reusable and now - conn.idle_since < IDLE:
                return conn
            conn.close()
        return None

    def _keep(self, conn: Connection) -> None:
        """Park a connection for its origin's next request. A run may touch thousands of
        hosts: past IDLE seconds, or past MAX_IDLE parked, a sweep closes the stale and the
        oldest."""
        now = asyncio.get_running_loop().time()
        conn.idle_since = now
        self._idle.setdefault(conn.key, collections.deque()).append(conn)
        self._parked += 1
        if self._parked > MAX_IDLE or now - self._swept > IDLE:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        parked = sorted((c for conns in self._idle.values() for c in conns),
                        key=lambda c: c.idle_since)
        keep = [c for c in parked if c.reusable and now - c.idle_since < IDLE][-KEEP:]
        for conn in set(parked) - set(keep):
            conn.close()
        self._idle = {}
        for conn in keep:
            self._idle.setdefault(conn.key, collections.deque()).append(conn)
        self._parked, self._swept = len(keep), now

    def _lost(self, conn: Connection) -> None:
        conns = self._idle.get(conn.key)
        if conns is not None and conn in conns:
            conns.remove(conn)

    def _head(self, target: Target, headers: Mapping[str, str]) -> bytes:
        lines = [f"GET {target.path_qs} HTTP/1.1", f"Host: {target.authority}",
                 f"User-Agent: {self.agent}", "Accept: */*"]
        if target.credentials:  # as aiohttp sends a URL's credentials
            lines.append(f"Authorization: Basic {target.credentials}")
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        if any("\r" in line or "\n" in line for line in lines):
            raise ValueError("a header or the URL holds a line break")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _connect(self, key: Key, timeout: float) -> Connection:
        loop = asyncio.get_running_loop()
        host, port = key[1], key[2]
        tls = self._context() if key[0] == "https" else None
        last: BaseException | None = None
        for address in await self._addresses(host, port, timeout):
            try:
                async with asyncio.timeout(timeout):
                    _, conn = await loop.create_connection(
                        lambda: Connection(key, self._keep, self._lost), address, port, ssl=tls,
                        server_hostname=host if tls is not None else None)
                return conn
            except (OSError, TimeoutError) as exc:
                last = exc
        raise WireError(_connect_failure(host, port, last))

    async def _addresses(self, host: str, port: int, timeout: float) -> list[str]:
        if _is_ip(host):
            return [host]
        try:
            async with asyncio.timeout(timeout):
                found = await self.resolver.resolve(host, port, socket.AF_UNSPEC)
        except TimeoutError:
            raise WireError(f"resolving {host} timed out") from None
        except OSError as exc:
            raise WireError(f"cannot resolve {host}: {exc.strerror or exc}") from None
        return [str(r["host"]) for r in found]

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl


class Target(NamedTuple):
    """What a request needs of its URL."""

    scheme: str
    host: str  # as connected to: lower case, an IPv6 address without brackets
    port: int
    authority: str  # the Host header
    path_qs: str  # the request target: path and query, encoded
    credentials: str  # base64 of a URL's user:password, or ""
    text: str  # the URL as requested


def target_of(url: str, params: Mapping[str, str] | None = None) -> Target:
    """A plain URL (lower-case host, no userinfo, %-escape, dot segment or fragment) is split
    here; any other goes through yarl, which encodes and normalises it as aiohttp would (its
    parse was a tenth of the event loop's time on 5,000 small files)."""
    plain = None if params else _PLAIN.fullmatch(url)
    if plain is not None and "/." not in (path := plain[4] or "/"):
        scheme, host = plain[1], plain[2]
        port = int(plain[3]) if plain[3] else DEFAULT_PORTS[scheme]
        if port <= 0xFFFF:
            authority = host if port == DEFAULT_PORTS[scheme] else f"{host}:{port}"
            return Target(scheme, host, port, authority, path + (plain[5] or ""), "", url)
    return _target_by_yarl(url, params)


def _target_by_yarl(url: str, params: Mapping[str, str] | None) -> Target:
    from yarl import URL  # imported by the first URL that needs it: ~30 ms off a start

    parsed = URL(url)
    if params:
        parsed = parsed.extend_query(params)
    parsed = parsed.with_fragment(None)
    host, port = parsed.raw_host or "", parsed.port or 0
    if parsed.scheme not in DEFAULT_PORTS or not host:
        raise ValueError(f"not an http(s) URL with a host: {parsed.scheme!r}")
    authority = f"[{host}]" if ":" in host else host
    if parsed.explicit_port is not None and port != DEFAULT_PORTS[parsed.scheme]:
        authority = f"{authority}:{port}"
    credentials = ""
    if parsed.user is not None:
        pair = f"{parsed.user}:{parsed.password or ''}".encode()
        credentials = base64.b64encode(pair).decode()
    return Target(parsed.scheme, host, port, authority, parsed.raw_path_qs, credentials,
                  str(parsed))


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

