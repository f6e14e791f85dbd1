"""A job's JSON API: a GET through the shared client and the one retry policy, read within
a size cap and a least speed, parsed."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from .. import errors
from ..redact import redact_url
from .http import REFUSALS, Credentials, Http, status_error
from .limits import SpeedGuard
from .policy import RetryPolicy

if TYPE_CHECKING:
    import aiohttp

MAX_LISTING_BYTES = 256 * 1024 * 1024  # a listing larger than this is refused, not parsed


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
        window: float = 0.0,
    ) -> None:
        """``window``: the API's rate-limit window in seconds, when it refuses without a
        Retry-After (Spectrum): the retries of a refusal then span it (see RetryPolicy)."""
        self._http = http
        self._window = window
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
    ) -> tuple[bytearray, str]:
        """The body and its Content-Type, unparsed; retries like :meth:`get_json`.

        ``retry_statuses`` (Spectrum's 403) are refusals like 429; one that outlasts every
        retry is an HTTPStatusError, for the caller to tell a refused key from the rest.
        """
        policy = RetryPolicy(self._retries, self._http.limits, REFUSALS | retry_statuses,
                             self._rand, self._window)
        try:
            return await policy.run(lambda: self._get_once(url, params, headers,
                                                           retry_statuses), url)
        except errors.RetryableError as exc:
            if exc.status is not None and exc.status in retry_statuses:
                raise errors.HTTPStatusError(exc.message, url=exc.url, status=exc.status) from None
            raise

    async def _get_once(
        self,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        retry_statuses: frozenset[int],
    ) -> tuple[bytearray, str]:
        send = {"Accept": "application/json", **(headers or {})}
        async with self._http.request(url, headers=send, params=params,
                                      credentials=self._credentials, timeout=self._timeout,
                                      refusals=REFUSALS | retry_statuses) as resp:
            if resp.status != 200:
                raise status_error(resp, url, retry_statuses)
            body = await _read_capped(resp, url, SpeedGuard(self._min_speed, self._timeout))
            return body, resp.headers.get("Content-Type", "")


async def _read_capped(resp: aiohttp.ClientResponse, url: str, guard: SpeedGuard
                       ) -> bytearray:
    """The body, refused past the cap as soon as it is announced or has arrived.

    One growing buffer, handed on as it is: chunks joined into ``bytes`` at the end held the
    page twice (a 120 MB page took 240 MB here), and ``bytes(buffer)`` would copy it again.
    """
    length = resp.content_length
    if length is not None and length > MAX_LISTING_BYTES:
        raise errors.BadResponseError(f"listing of {length} bytes is over the {MAX_LISTING_BYTES} "
                                      "byte cap", url=redact_url(url))
    body = bytearray()
    async for chunk in resp.content.iter_chunked(1 << 20):
        if len(body) + len(chunk) > MAX_LISTING_BYTES:
            raise errors.BadResponseError(f"listing is over the {MAX_LISTING_BYTES} byte cap",
                                          url=redact_url(url))
        body += chunk
        guard.check(len(body), url)
    return body


_JSON = msgspec.json.Decoder()


def parse_json(body: bytes | bytearray, content_type: str, url: str) -> Any:
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
