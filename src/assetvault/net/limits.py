"""How fast: one token bucket and one-second window per origin, the breaker, a byte budget,
and the least speed a body must keep."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from .. import errors
from ..redact import redact_url
from . import retry
from .circuit import DEFAULT_THRESHOLD, Breaker
from .origin import Origin
from .ratelimit import TokenBucket, WindowGuard, lowest_rate

log = logging.getLogger("assetvault")

# A little over a second: a server counts arrivals, which jitter by milliseconds. (1.05 cost
# 3.5% of throughput at 100/s: (rate + burst) / window is the most the guard lets through.)
GUARD_WINDOW = 1.01


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
        # Told of every Retry-After this process obeys (a cluster worker passes it on to the
        # others: the origin asked the whole cluster to wait, not one process).
        self.on_slow_down: Callable[[Origin, float], None] | None = None
        self._file_window: int | None = None  # a cluster worker's share of the window

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

    def rescale_files(self, rate: float, burst: float, window: int) -> None:
        """New file-origin limits (a cluster worker's share of the cluster's, and ``window``
        requests in any second): buckets keep their saved tokens up to the new burst, and
        blocks they carry; guards start over."""
        if (rate, burst) == self._file and window == self._file_window:
            return  # the same share again: the guards keep what they saw
        self._file = (rate, burst)
        self._file_window = window
        for origin, bucket in self._buckets.items():
            if origin not in self._api:
                bucket.rate, bucket.burst = rate, max(1.0, burst)
                bucket.tokens = min(bucket.tokens, bucket.burst)
                self._guards.pop(origin, None)

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
        if bucket.rate <= 0 and not bucket.blocked_until:
            return  # unlimited and never asked to wait: nothing below could hold it
        # A Retry-After that arrived while we slept holds this request too, not only new ones:
        # its booking is void, and it books again behind the block. (Timed waits on the
        # clock: nothing could signal them.)
        while True:
            booked = bucket.blocks
            wait = bucket.reserve(self._loop_time())
            if wait > 0:
                await asyncio.sleep(wait)
            if bucket.blocks == booked:
                break
        if bucket.unlimited:
            return
        guard = self._guards.get(origin)
        if guard is None:
            limit = max(1, int(bucket.rate + bucket.burst))
            if self._file_window is not None and origin not in self._api:
                limit = self._file_window
            guard = self._guards[origin] = WindowGuard(limit, window=GUARD_WINDOW)
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
        if self.on_slow_down is not None:
            self.on_slow_down(origin, seconds)

    def hold_off(self, origin: Origin, seconds: float) -> None:
        """Another process was told to wait ``seconds`` for ``origin``: so does this one."""
        self.bucket(origin).block(self._loop_time(), seconds)


class Bandwidth:
    """A byte budget over all downloads together; ``rate`` 0 means unlimited."""

    def __init__(self, rate: float) -> None:
        self._bucket: TokenBucket | None = None
        self.rescale(rate)

    def rescale(self, rate: float) -> None:
        """A new rate (a cluster worker's share of the cluster's budget)."""
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
