"""The one retry policy, for API calls and file downloads alike.

An attempt that fails in a way another may cure (a connection error, a timeout, 408/429/5xx,
a truncated or failed check) is tried again after exponential backoff with full jitter, never
sooner than a ``Retry-After`` asked; a refusal ("not now": 429, 503, Spectrum's 403) also
slows its origin down for every request of the run, and past ``retry.RETRY_AFTER_CAP`` the
origin's breaker stops asking it. Anything else ends the attempts at once.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec
from msgspec import field

from .. import errors
from . import retry
from .client import WireError
from .http import REFUSALS, network_error
from .limits import Limits
from .origin import origin_of

T = TypeVar("T")


class RetryPolicy(msgspec.Struct, frozen=True):
    """``retries`` further attempts after the first, within the run's ``limits``."""

    retries: int
    limits: Limits
    refusals: frozenset[int] = REFUSALS
    rand: Callable[[], float] = field(default=random.random)
    # The origin's rate-limit window (seconds; 0: none known). A refusal that names no
    # Retry-After then holds the origin for a share of it that doubles each time, the shares
    # over all the retries adding up to the window: a refusal that persists through them
    # persisted through a whole window (Spectrum: 100 requests per 60 s, then 403s).
    window: float = 0.0

    async def run(self, attempt: Callable[[], Awaitable[T]], url: str) -> T:
        """The result of the first attempt that succeeds; else the last retryable error.

        A FetchError that is not retryable (and anything else) propagates at once.
        """
        last: errors.RetryableError | None = None
        for n in range(self.retries + 1):
            if last is not None:
                await asyncio.sleep(retry.next_delay(n - 1, self.rand, last.retry_after))
            try:
                return await attempt()
            except errors.RetryableError as exc:
                last = exc
            except (WireError, TimeoutError) as exc:
                last = network_error(exc, url)
            refused = last.status is not None and last.status in self.refusals
            if refused and last.retry_after is None and self.window > 0 and n < self.retries:
                last.retry_after = self.window * 2.0 ** n / (2.0 ** self.retries - 1)
            if refused or (last.retry_after or 0.0) > retry.RETRY_AFTER_CAP:
                # The origin that said so: after a redirect, not the URL's own. (Past the cap
                # any status: its breaker answers the next attempt, nothing waits that long.)
                self.limits.slow_down(last.origin or origin_of(url), last.retry_after or 1.0)
        assert last is not None
        raise last
