"""The one place that talks HTTP: a GET through the run's limits, with credentials only for
their origin and redirects followed here.

Redirects are followed here rather than by aiohttp, because aiohttp would carry our custom
headers (``SPECTRUM_API_TOKEN``) to whatever host a redirect names.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import msgspec
from msgspec import field

from .. import errors
from ..redact import SECRET_PARAMS, redact_text, redact_url
from . import retry
from .client import Pool, Response, WireError
from .connection import HEAD_WAIT
from .limits import Limits
from .origin import GuardedResolver, Origin, check_url, origin_of

if TYPE_CHECKING:
    import aiohttp

__all__ = ["Credentials", "Http", "Pool", "Response", "status_error"]
log = logging.getLogger("assetvault")


class _Reply(Protocol):
    """What both clients' responses answer (aiohttp's for API calls, ours for files)."""

    @property
    def status(self) -> int: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def url(self) -> object: ...
    def release(self) -> object: ...


R = TypeVar("R", bound=_Reply)
REDIRECTS = frozenset({301, 302, 303, 307, 308})
REFUSALS = frozenset({429, 503})


NEUTRAL_HEADERS = frozenset({"accept", "accept-encoding", "range", "if-range", "user-agent"})
MAX_REDIRECTS = 10
PASSED_MAX = 4096  # origins remembered as checked


class Credentials(msgspec.Struct, frozen=True):
    """What a job sends to its API origin, and nowhere else."""

    origin: Origin
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)


class Http:
    """Requests through the run's clients, limits and credential rules: files through
    ``pool``, API calls through aiohttp (``session``, opened at the first API call unless
    given)."""

    def __init__(self, session: aiohttp.ClientSession | None, limits: Limits,
                 pool: Pool | None = None) -> None:
        """``pool`` carries the file downloads; by default one whose resolver allows no name
        a link-local address. A session given is the caller's to close."""
        agent = session.headers.get("User-Agent", "") if session is not None else ""
        self.pool = pool or Pool(GuardedResolver(), agent)
        self._session = session
        self._own_session = session is None
        self.limits = limits
        # (origin, allow_hosts, trusted) that passed check_url: its verdict on a URL with a
        # scheme and a host depends on nothing else (it parsed the host as an IP address on
        # every request: 2% of the event loop on 5,000 small files).
        self._passed: set[tuple[Origin, tuple[str, ...], str | None]] = set()

    async def close(self) -> None:
        self.pool.close()
        if self._own_session and self._session is not None:
            await self._session.close()

    def _check(self, url: str, origin: Origin, ask: _Ask) -> None:
        key = (origin, ask.allow_hosts, ask.trusted)
        if key in self._passed:
            return
        check_url(url, ask.allow_hosts, ask.trusted)
        if origin[0] and origin[1]:
            if len(self._passed) >= PASSED_MAX:
                self._passed.clear()
            self._passed.add(key)

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
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET ``url`` (an API call: the body decoded), following redirects ourselves so
        credentials never leave their origin.

        ``refusals`` (statuses meaning "not now") feed the origin's breaker. A redirect loop,
        or an 11th hop, is a FetchError no retry cures (the same chain again).
        """
        from .session import ClientError  # aiohttp's, imported by the first API call

        ask = _Ask(url, headers or {}, params or {}, credentials, timeout, allow_hosts,
                   refusals, origin_of(url),
                   credentials.origin[1] if credentials is not None else None)
        try:
            async with self._follow(ask, self._session_get) as resp:
                yield resp
        except ClientError as exc:  # also what breaks while the caller reads the body
            # aiohttp's text may end with the URL, query and all: never a secret in an error.
            raise WireError(redact_text(f"{type(exc).__name__}: {exc}")) from exc

    def download(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        credentials: Credentials | None,
        timeout: float,
        allow_hosts: tuple[str, ...],
    ) -> AbstractAsyncContextManager[Response]:
        """GET a file's bytes as the server sends them (never decoded), through the lean
        client; redirects and credentials as for :meth:`request`. (The redirects' own
        context manager, not one wrapping it: one generator less per file.)"""
        ask = _Ask(url, headers, {}, credentials, timeout, allow_hosts, REFUSALS,
                   origin_of(url), credentials.origin[1] if credentials is not None else None)
        return self._follow(ask, self._pool_get)

    def _follow(self, ask: _Ask,
                send: Callable[[str, _Ask, Mapping[str, str], Mapping[str, str]],
                               Awaitable[R]]) -> _Followed[R]:
        return _Followed(self, ask, send)

    async def _hops(self, ask: _Ask,
                    send: Callable[[str, _Ask, Mapping[str, str], Mapping[str, str]],
                                   Awaitable[R]]) -> R:
        """The answer at the end of the redirects (a redirect's own answer is released)."""
        current, visited = ask.url, set[str]()
        for _hop in range(MAX_REDIRECTS + 1):
            origin = ask.first if current == ask.url else origin_of(current)
            self._check(current, origin, ask)
            if current in visited:
                raise errors.FetchError("redirect loop: the server sent us back to a URL it "
                                        "had already redirected", url=redact_url(ask.url))
            visited.add(current)
            resp = await self._send(current, origin, ask, send)
            location = resp.headers.get("Location")
            if resp.status in REDIRECTS and location:
                resp.release()
                current = _next_hop(current, location, ask)
                continue
            return resp
        raise errors.FetchError(f"more than {MAX_REDIRECTS} redirects", url=redact_url(ask.url))

    async def _send(self, current: str, origin: Origin, ask: _Ask,
                    send: Callable[[str, _Ask, Mapping[str, str], Mapping[str, str]],
                                   Awaitable[R]]) -> R:
        """One hop: its headers and credentials, its origin's turn, the GET itself."""
        self.limits.check_open(origin, current)
        # The caller's headers may carry credentials (the Spectrum token, a job's
        # `headers`): past the first origin only neutral ones travel.
        send_headers = {k: v for k, v in ask.headers.items()
                        if origin == ask.first or k.lower() in NEUTRAL_HEADERS}
        send_params = dict(ask.params) if current == ask.url else {}
        if ask.credentials is not None and ask.credentials.origin == origin:
            send_headers.update(ask.credentials.headers)
            send_params.update(ask.credentials.params)
        await self.limits.acquire(origin)
        try:
            resp = await send(current, ask, send_headers, send_params)
        except ValueError:  # aiohttp's InvalidURL is one too
            # What yarl refuses no retry will mend (e.g. the numeric host 2852039166).
            raise errors.UnsafeURLError("refused to fetch a URL that cannot be parsed",
                                        url=redact_url(current)) from None
        self.limits.answered(origin, resp.status in ask.refusals)
        return resp

    async def _session_get(self, url: str, ask: _Ask, headers: Mapping[str, str],
                           params: Mapping[str, str]) -> aiohttp.ClientResponse:
        from .session import client_timeout, open_session

        if self._session is None:
            self._session = open_session(self.pool.resolver, self.pool.agent)
        # Connect and headers together are bounded too: an idle timeout alone would let a
        # server that trickles its header lines hold the request forever (the file client
        # bounds its own head the same way).
        async with asyncio.timeout(HEAD_WAIT * ask.timeout):
            return await self._session.get(url, headers=headers, params=params or None,
                                           allow_redirects=False,
                                           timeout=client_timeout(ask.timeout))

    def _pool_get(self, url: str, ask: _Ask, headers: Mapping[str, str],
                  params: Mapping[str, str]) -> Awaitable[Response]:
        return self.pool.get(url, headers, params, ask.timeout)  # no coroutine of its own


class _Ask(msgspec.Struct, frozen=True):
    """What the caller asked of one request, the same for every hop of its redirects."""

    url: str
    headers: Mapping[str, str]
    params: Mapping[str, str]
    credentials: Credentials | None
    timeout: float
    allow_hosts: tuple[str, ...]
    refusals: frozenset[int]
    first: Origin  # the URL's own origin: the caller's headers go there only
    trusted: str | None  # the job's own API host, which the manifest chose


class _Followed(Generic[R]):
    """``async with``: the answer at the end of the redirects, released on the way out. (A
    class, not an asynccontextmanager: its generator cost ~5 calls a file.)"""

    __slots__ = ("_ask", "_http", "_resp", "_send")

    def __init__(self, http: Http, ask: _Ask,
                 send: Callable[[str, _Ask, Mapping[str, str], Mapping[str, str]],
                                Awaitable[R]]) -> None:
        self._http, self._ask, self._send = http, ask, send
        self._resp: R | None = None

    async def __aenter__(self) -> R:
        self._resp = await self._http._hops(self._ask, self._send)
        return self._resp

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._resp is not None:
            self._resp.release()


def _next_hop(current: str, location: str, ask: _Ask) -> str:
    """Where a redirect goes; a query repeated into another origin loses its credentials."""
    try:
        target = urljoin(current, location)
    except ValueError:
        raise errors.UnsafeURLError("the server redirected to a URL that cannot be parsed",
                                    url=redact_url(ask.url)) from None
    if origin_of(target) != ask.first:
        # A server may repeat our query (api_key and all) in its Location.
        target = strip_params(target, ask.credentials)
    return target


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
    resp: _Reply, url: str, retry_statuses: frozenset[int]
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
        text = str(exc) if isinstance(exc, WireError) else f"{type(exc).__name__}: {exc}"
        reason = text.split(" for url", 1)[0]
    return errors.RetryableError(f"network error: {reason}", url=redact_url(url))
