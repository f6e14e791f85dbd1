"""The one place that talks HTTP: per-origin rate limits, credentials by origin, redirects, retries.

Credentials travel only to the origin they belong to. Redirects are followed here rather than
by aiohttp, because aiohttp would carry our custom headers (``SPECTRUM_API_TOKEN``) to whatever
host a redirect names.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import logging
import random
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import aiohttp
import msgspec
from aiohttp.abc import AbstractResolver, ResolveResult

from .. import errors
from ..redact import SECRET_PARAMS, redact_url
from . import retry
from .circuit import DEFAULT_THRESHOLD, Breaker
from .ratelimit import TokenBucket, WindowGuard, lowest_rate

Origin = tuple[str, str, int]
log = logging.getLogger("assetvault")

REDIRECTS = frozenset({301, 302, 303, 307, 308})
REFUSALS = frozenset({429, 503})
# A little over a second: a server counts arrivals, which jitter by milliseconds. (1.05 cost
# 3.5% of throughput at 100/s: (rate + burst) / window is the most the guard lets through.)
GUARD_WINDOW = 1.01
NEUTRAL_HEADERS = frozenset({"accept", "accept-encoding", "range", "if-range", "user-agent"})
MAX_REDIRECTS = 10
MAX_LISTING_BYTES = 256 * 1024 * 1024  # a listing larger than this is refused, not parsed
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> Origin:
    """(scheme, host, port) of a URL, lower-cased, with the default port filled in.

    An unparsable URL has the origin ``("", "", 0)``, which :func:`check_url` refuses.
    """
    start = url.find("://")
    if start > 0:
        end = min((i for i in (url.find(c, start + 3) for c in "/?#") if i >= 0),
                  default=len(url))
        return _origin(url[:end])
    return _origin(url)


@functools.lru_cache(maxsize=1024)
def _origin(url: str) -> Origin:
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return "", "", 0
    return scheme, host, port or DEFAULT_PORTS.get(scheme, 0)


def check_url(url: str, allow_hosts: tuple[str, ...] = (), trusted: str | None = None) -> None:
    """Refuse what we never fetch: other schemes, no host, hosts outside ``allow_hosts``, and
    link-local addresses that neither ``allow_hosts`` nor ``trusted`` (the job's own API host,
    which the manifest chose) names."""
    scheme, host, _ = origin_of(url)
    if not scheme and not host and _unparsable(url):
        raise errors.UnsafeURLError("refused to fetch a URL that cannot be parsed",
                                    url=redact_url(url))
    if scheme not in DEFAULT_PORTS:
        shown = f"scheme {scheme + ':'!r}" if scheme else "a relative or empty URL"
        raise errors.UnsafeURLError(f"refused to fetch {shown}: only http and https are fetched",
                                    url=redact_url(url))
    if not host:
        raise errors.UnsafeURLError("refused to fetch a URL without a host", url=redact_url(url))
    if ":" in host:  # IPv6: one canonical text, as allow_hosts keeps it
        host = _canonical_ip(host)
        trusted = _canonical_ip(trusted) if trusted else trusted
    if allow_hosts and host not in allow_hosts:
        raise errors.UnsafeURLError(f"host {host!r} is not in allow_hosts", url=redact_url(url))
    if is_link_local(host) and host != trusted and host not in allow_hosts:
        raise errors.UnsafeURLError(_LINK_LOCAL.format(host=host), url=redact_url(url))


_LINK_LOCAL = ("refused to fetch the link-local address {host} (169.254.0.0/16 and fe80::/10 "
               "hold cloud metadata services); name it in the job's allow_hosts to fetch it")


def _canonical_ip(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def is_link_local(host: str) -> bool:
    """True for a literal link-local address, IPv4 (also mapped into IPv6) or IPv6."""
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_link_local


class GuardedResolver(AbstractResolver):
    """DNS that never hands aiohttp a link-local address for a name not in ``allowed``.

    Literal addresses are checked per request by :func:`check_url` (aiohttp does not resolve
    them); a name is checked here, after resolution, so neither a DNS record nor a redirect
    nor a numeric form such as ``http://2852039166/`` reaches a metadata service.
    """

    def __init__(self, allowed: frozenset[str] = frozenset()) -> None:
        self._inner = aiohttp.DefaultResolver()
        self._allowed = allowed

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if host.lower() in self._allowed:
            return found
        kept = [r for r in found if not is_link_local(r["host"])]
        if not kept and found:
            raise errors.UnsafeURLError(_LINK_LOCAL.format(host=f"{found[0]['host']} (from "
                                                          f"{host})"), url=host)
        return kept

    async def close(self) -> None:
        await self._inner.close()


def _unparsable(url: str) -> bool:
    try:
        urlsplit(url).port  # noqa: B018 - parsing the port is what may raise
    except ValueError:
        return True
    return False


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a job sends to its API origin, and nowhere else."""

    origin: Origin
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)


class Limits:
    """One token bucket per origin, shared by every job and request of the run."""

    def __init__(self, file_rate: float = 0.0, file_burst: float = 16.0,
                 breaker_threshold: int = DEFAULT_THRESHOLD) -> None:
        self._file = (file_rate, file_burst)
        self._api: dict[Origin, tuple[float, float]] = {}
        self._buckets: dict[Origin, TokenBucket] = {}
        self._breakers: dict[Origin, Breaker] = {}
        self._guards: dict[Origin, WindowGuard] = {}
        self._threshold = breaker_threshold
        self._loop_time: Callable[[], float] = lambda: asyncio.get_running_loop().time()

    def check_open(self, origin: Origin, url: str) -> None:
        """Refuse to ask an origin whose breaker tripped."""
        breaker = self._breakers.get(origin)
        if breaker is not None and breaker.tripped:
            why = (f"asked to wait {breaker.retry_after:.0f} s" if breaker.retry_after else
                   f"refused {breaker.refusals} requests in a row")
            raise errors.FetchError(
                f"not requested: {origin[1]}:{origin[2]} {why} (rate limited or unavailable), "
                "so assetvault stopped asking it for this run; run again later",
                url=redact_url(url))

    def answered(self, origin: Origin, refused: bool) -> None:
        """Feed the origin's breaker with one answer."""
        breaker = self._breakers.setdefault(origin, Breaker(self._threshold))
        if not refused:
            breaker.succeeded()
        elif breaker.refused():
            log.warning("%s:%s refused %d requests in a row: no more requests to it in this run",
                        origin[1], origin[2], breaker.refusals)

    def set_api(self, origin: Origin, rate: float, burst: float) -> None:
        """Declare an API origin; where several jobs declare one, the lowest values win."""
        if origin in self._api:
            old_rate, old_burst = self._api[origin]
            rate, burst = lowest_rate([old_rate, rate]), min(old_burst, burst)
        self._api[origin] = (rate, burst)
        self._buckets.pop(origin, None)

    def bucket(self, origin: Origin) -> TokenBucket:
        """The bucket of an origin, made on first use."""
        found = self._buckets.get(origin)
        if found is None:
            rate, burst = self._api.get(origin, self._file)
            found = self._buckets[origin] = TokenBucket(rate=rate, burst=max(1.0, burst))
        return found

    async def acquire(self, origin: Origin) -> None:
        """Wait until the origin's bucket, and its one-second window, let one more go."""
        bucket = self.bucket(origin)
        wait = bucket.reserve(self._loop_time())
        if wait > 0:
            await asyncio.sleep(wait)
        # A Retry-After that arrived while we slept holds this request too, not only new ones.
        # (Timed waits on the clock: nothing could signal them.)
        while (blocked := bucket.blocked_until - self._loop_time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(blocked)
        if bucket.unlimited:
            return
        guard = self._guards.get(origin)
        if guard is None:
            guard = self._guards[origin] = WindowGuard(max(1, int(bucket.rate + bucket.burst)),
                                                       window=GUARD_WINDOW)
        while (late := guard.wait(self._loop_time())) > 0:  # noqa: ASYNC110
            await asyncio.sleep(late)

    def slow_down(self, origin: Origin, seconds: float) -> None:
        """Every worker holds off this origin for ``seconds`` (a 429, 503 or Retry-After).

        Past ``RETRY_AFTER_CAP`` the origin is not asked again in this run instead: nothing
        waits a day, and nothing asks sooner than the server said.
        """
        if seconds > retry.RETRY_AFTER_CAP:
            breaker = self._breakers.setdefault(origin, Breaker(self._threshold))
            breaker.retry_after = max(breaker.retry_after, seconds)
            if breaker.trip():
                log.warning("%s:%s asked to wait %.0f s (more than %.0f): no more requests to it "
                            "in this run", origin[1], origin[2], seconds, retry.RETRY_AFTER_CAP)
            return
        self.bucket(origin).block(self._loop_time(), seconds)


class Bandwidth:
    """A byte budget over all downloads together; ``rate`` 0 means unlimited."""

    def __init__(self, rate: float) -> None:
        # A quarter second of burst keeps the rate smooth without a sleep per small chunk.
        self._bucket = TokenBucket(rate=rate, burst=max(rate / 4, 64 * 1024)) if rate > 0 else None

    async def consume(self, n: int) -> float:
        """Take ``n`` bytes from the budget; the seconds this waited for them."""
        if self._bucket is not None:
            wait = self._bucket.reserve(asyncio.get_running_loop().time(), n)
            if wait > 0:
                await asyncio.sleep(wait)
                return wait
        return 0.0


class SpeedGuard:
    """curl's ``--speed-limit``/``--speed-time``: a body that brings fewer than ``limit``
    bytes a second over ``window`` seconds is stalled, however steadily it trickles.

    Checked as bytes arrive (one clock read per chunk); silence itself is the socket read
    timeout's business. Time spent in our own throttling is not the server's: see
    :meth:`credit`.
    """

    __slots__ = ("_base", "_clock", "_start", "limit", "window")

    def __init__(self, limit: float, window: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._start = clock()
        self._base = 0

    def check(self, total: int, url: str) -> None:
        """``total`` bytes have arrived so far; raise RetryableError if too slowly."""
        if self.limit <= 0:
            return
        now = self._clock()
        elapsed = now - self._start
        if elapsed < self.window:
            return
        if total - self._base < self.limit * elapsed:
            raise errors.RetryableError(
                f"too slow: {total - self._base} bytes in {elapsed:.0f} s, below min_speed "
                f"({self.limit:g} bytes/s over {self.window:g} s)", url=redact_url(url))
        self._start, self._base = now, total

    def credit(self, seconds: float) -> None:
        """Do not count ``seconds`` we spent waiting on our own bandwidth budget."""
        self._start += seconds


def client_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """No total limit: an attempt is abandoned only when it makes no progress for ``seconds``."""
    return aiohttp.ClientTimeout(total=None, connect=None, sock_connect=seconds, sock_read=seconds)


class Http:
    """Requests through the shared session, limits and credential rules."""

    def __init__(self, session: aiohttp.ClientSession, limits: Limits) -> None:
        self.session = session
        self.limits = limits

    @asynccontextmanager
    async def request(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        credentials: Credentials | None = None,
        timeout: float = 60.0,
        allow_hosts: tuple[str, ...] = (),
        refusals: frozenset[int] = REFUSALS,
        decompress: bool = True,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET ``url``, following redirects ourselves so credentials never leave their origin.

        ``refusals`` are the statuses that mean "not now" from this origin (they feed its
        circuit breaker; Spectrum adds its 403). ``decompress=False`` hands over the body as
        the server sent it, whatever its ``Content-Encoding`` (files: we asked for identity,
        and decoded bytes are never the file).

        A redirect loop, or more than ``MAX_REDIRECTS`` hops, is a FetchError that no retry
        cures: the next attempt would walk the same chain.
        """
        current = url
        first = origin_of(url)
        trusted = credentials.origin[1] if credentials is not None else None
        visited: set[str] = set()
        for _hop in range(MAX_REDIRECTS + 1):
            check_url(current, allow_hosts, trusted)
            if current in visited:
                raise errors.FetchError("redirect loop: the server sent us back to a URL it "
                                        "had already redirected", url=redact_url(url))
            visited.add(current)
            origin = origin_of(current)
            self.limits.check_open(origin, current)
            # The caller's headers may carry credentials (the Spectrum token, a job's
            # `headers`): past the first origin only neutral ones travel.
            send_headers = {k: v for k, v in (headers or {}).items()
                            if origin == first or k.lower() in NEUTRAL_HEADERS}
            send_params = dict(params or {}) if current == url else {}
            if credentials is not None and credentials.origin == origin:
                send_headers.update(credentials.headers)
                send_params.update(credentials.params)
            await self.limits.acquire(origin)
            # Connect and headers together are bounded too: sock_read alone would let a
            # server that trickles its header lines hold the request forever.
            try:
                async with asyncio.timeout(2 * timeout):
                    resp = await self.session.get(
                        current,
                        headers=send_headers,
                        params=send_params or None,
                        allow_redirects=False,
                        timeout=client_timeout(timeout),
                        auto_decompress=decompress,
                    )
            except aiohttp.InvalidURL:
                # What yarl refuses no retry will mend (e.g. the numeric host 2852039166).
                raise errors.UnsafeURLError("refused to fetch a URL that cannot be parsed",
                                            url=redact_url(current)) from None
            self.limits.answered(origin, resp.status in refusals)
            location = resp.headers.get("Location")
            if resp.status in REDIRECTS and location:
                resp.release()
                try:
                    current = urljoin(current, location)
                except ValueError:
                    raise errors.UnsafeURLError("the server redirected to a URL that cannot be "
                                                "parsed", url=redact_url(url)) from None
                if origin_of(current) != first:
                    # A server may repeat our query (api_key and all) in its Location.
                    current = strip_params(current, credentials)
                continue
            try:
                yield resp
            finally:
                resp.release()
            return
        raise errors.FetchError(f"more than {MAX_REDIRECTS} redirects", url=redact_url(url))


def strip_params(url: str, credentials: Credentials | None) -> str:
    """``url`` without the credentials' query parameters or any known secret parameter."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    names = {k.lower() for k in (credentials.params if credentials else {})} | SECRET_PARAMS
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if k.lower() not in names]
    return urlunsplit(parts._replace(query=urlencode(kept)))


def status_error(
    resp: aiohttp.ClientResponse, url: str, retry_statuses: frozenset[int]
) -> errors.FetchError:
    """The error for a response that is not what we asked for."""
    shown = redact_url(url)
    reason = f"HTTP {resp.status} {resp.reason or ''}".strip()
    if retry.is_retryable_status(resp.status) or resp.status in retry_statuses:
        after = retry.parse_retry_after(resp.headers.get("Retry-After"))
        return errors.RetryableError(reason, url=shown, retry_after=after, status=resp.status,
                                     origin=origin_of(str(resp.url)))
    return errors.HTTPStatusError(reason, url=shown, status=resp.status)


def network_error(exc: BaseException, url: str) -> errors.RetryableError:
    """A retryable error for a connection problem, with no secrets in it."""
    if isinstance(exc, TimeoutError):
        reason = "no progress before the timeout"
    else:
        reason = f"{type(exc).__name__}: {exc}".split(" for url", 1)[0]
    return errors.RetryableError(f"network error: {reason}", url=redact_url(url))


class JobApi:
    """The JSON API of one job: its retries, its timeout, its credentials."""

    def __init__(
        self,
        http: Http,
        *,
        retries: int,
        timeout: float,
        min_speed: float = 0.0,
        credentials: Credentials | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._http = http
        self._retries = retries
        self._timeout = timeout
        self._min_speed = min_speed
        self._credentials = credentials
        self._rand = rand

    async def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retry_statuses: frozenset[int] = frozenset(),
    ) -> Any:
        """The parsed JSON body; retries what is worth retrying, then raises a FetchError."""
        body, content_type = await self.get_body(url, params=params, headers=headers,
                                                 retry_statuses=retry_statuses)
        return parse_json(body, content_type, url)

    async def get_body(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retry_statuses: frozenset[int] = frozenset(),
    ) -> tuple[bytes, str]:
        """The body and its Content-Type, unparsed; retries like :meth:`get_json`."""
        last: errors.RetryableError | None = None
        for attempt in range(self._retries + 1):
            if last is not None:
                await asyncio.sleep(retry.next_delay(attempt - 1, self._rand, last.retry_after))
            try:
                return await self._get_once(url, params, headers, retry_statuses)
            except errors.RetryableError as exc:
                last = exc
        assert last is not None
        if last.status is not None and last.status in retry_statuses:
            raise errors.HTTPStatusError(last.message, url=last.url, status=last.status)
        raise last

    async def _get_once(
        self,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        retry_statuses: frozenset[int],
    ) -> tuple[bytes, str]:
        send = {"Accept": "application/json", **(headers or {})}
        try:
            async with self._http.request(url, headers=send, params=params,
                                          credentials=self._credentials,
                                          timeout=self._timeout,
                                          refusals=REFUSALS | retry_statuses) as resp:
                if resp.status != 200:
                    err = status_error(resp, url, retry_statuses)
                    if isinstance(err, errors.RetryableError) and resp.status in (403, 429, 503):
                        self._http.limits.slow_down(err.origin or origin_of(url),
                                                    err.retry_after or 1.0)
                    raise err
                body = await _read_capped(resp, url,
                                          SpeedGuard(self._min_speed, self._timeout))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise network_error(exc, url) from None
        return body, resp.headers.get("Content-Type", "")


async def _read_capped(resp: aiohttp.ClientResponse, url: str, guard: SpeedGuard) -> bytes:
    length = resp.content_length
    if length is not None and length > MAX_LISTING_BYTES:
        raise errors.BadResponseError(f"listing of {length} bytes is over the {MAX_LISTING_BYTES} "
                                      "byte cap", url=redact_url(url))
    chunks: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_chunked(1 << 20):
        total += len(chunk)
        if total > MAX_LISTING_BYTES:
            raise errors.BadResponseError(f"listing is over the {MAX_LISTING_BYTES} byte cap",
                                          url=redact_url(url))
        chunks.append(chunk)
        guard.check(total, url)
    return b"".join(chunks)


_JSON = msgspec.json.Decoder()


def parse_json(body: bytes, content_type: str, url: str) -> Any:
    """The JSON of a listing's body, else BadResponseError (naming the type and the start)."""
    try:
        # 2x the stdlib's speed, integers of any size exact (orjson makes floats of those
        # beyond 64 bits, silently); a re-run's listing is mostly this.
        return _JSON.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        pass
    try:
        # What msgspec refuses and the stdlib takes: lone surrogate escapes, NaN, a BOM.
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        kind = content_type.split(";")[0].strip() or "no content type"
        start = body[:40].decode("utf-8", "replace").strip().replace("\n", " ")
        raise errors.BadResponseError(f"the response is not JSON ({kind}, starts {start!r})",
                                      url=redact_url(url)) from None
