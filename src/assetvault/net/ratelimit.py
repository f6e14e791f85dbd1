"""Token-bucket arithmetic, pure: the clock is passed in, nothing sleeps here.

A bucket answers "how long must this request wait?" and books the tokens at once, so callers
that arrive together queue up behind each other instead of all waking at the same moment.
"""

from __future__ import annotations

from collections import deque

import msgspec
from msgspec import field


class TokenBucket(msgspec.Struct):
    """``rate`` tokens per second, up to ``burst`` saved up; rate 0 means unlimited."""

    rate: float
    burst: float
    tokens: float = -1.0  # negative sentinel: start full
    updated: float | None = None
    blocked_until: float = 0.0  # an origin asked us to back off (Retry-After, 429/503)
    blocks: int = 0  # how many times it did: a booking made before the last block is void

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def reserve(self, now: float, n: float = 1.0) -> float:
        """Book ``n`` tokens; return the seconds to wait before using them (0 = go now)."""
        pause = max(0.0, self.blocked_until - now)
        if self.unlimited:
            return pause
        self._refill(now)
        self.tokens -= n
        # After a block the bucket's clock starts at its end (``updated``), not now.
        start = max(0.0, (self.updated or now) - now)
        wait = start + (-self.tokens / self.rate if self.tokens < 0 else 0.0)
        return max(wait, pause)

    def block(self, now: float, seconds: float) -> None:
        """Stop everyone using this bucket for ``seconds`` from ``now`` (never shortens a
        block). What was booked before is void (its holders book again, see ``blocks``): the
        sends resume at the end of the block one at a time, at ``rate``, with no burst saved
        up, instead of every booking that fell inside the block going out together."""
        until = max(self.blocked_until, now + max(0.0, seconds))
        self.blocked_until = until
        self.blocks += 1
        if not self.unlimited:
            self.tokens, self.updated = 1.0, until

    def _refill(self, now: float) -> None:
        if self.updated is not None and now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        if self.updated is None or now > self.updated:
            self.updated = now


class WindowGuard(msgspec.Struct):
    """At most ``limit`` sends in any ``window`` seconds, judged at the moment of sending.

    A bucket books start times; if the event loop stalls, requests whose time has passed go
    out back to back, and a server counting arrivals sees more than rate + burst in a second.
    This guard, consulted right before each send, closes that gap.
    """

    limit: int
    window: float = 1.0
    sent: deque[float] = field(default_factory=deque)

    def wait(self, now: float) -> float:
        """Seconds to wait before one more send may go (0 = now); records it when 0."""
        while self.sent and now - self.sent[0] >= self.window:
            self.sent.popleft()
        if len(self.sent) >= self.limit:
            return self.window - (now - self.sent[0])
        self.sent.append(now)
        return 0.0


def lowest_rate(rates: list[float]) -> float:
    """The strictest of several rate settings, where 0 means unlimited."""
    limited = [r for r in rates if r > 0]
    return min(limited) if limited else 0.0
