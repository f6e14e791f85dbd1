"""Retry arithmetic, pure: which failures are worth another try and how long to wait first."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
BACKOFF_BASE = 0.5  # seconds before the first retry (times jitter)
BACKOFF_CAP = 60.0
# The longest Retry-After we wait out. A server asking for more is not asked again in this run
# (its origin's breaker trips; what is left for it fails, "run again later"): waiting a day
# would hang a nightly run, and asking sooner than it said would risk the key.
RETRY_AFTER_CAP = 300.0


def is_retryable_status(status: int) -> bool:
    """408, 429 and 5xx: the server may well answer differently next time."""
    return status in RETRYABLE_STATUSES or 500 <= status <= 599


def backoff(attempt: int, rand: Callable[[], float], *, base: float = BACKOFF_BASE,
            cap: float = BACKOFF_CAP) -> float:
    """Exponential backoff with full jitter (AWS architecture blog): uniform in [0, base*2^n]."""
    return float(rand() * min(cap, base * (2.0 ** max(0, attempt))))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        import email.utils  # only a Retry-After date needs it: ~9 ms off every run's start

        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def next_delay(attempt: int, rand: Callable[[], float], retry_after: float | None) -> float:
    """The wait before attempt ``attempt + 1``: never earlier than the server asked."""
    jitter = backoff(attempt, rand)
    if retry_after is None or retry_after > RETRY_AFTER_CAP:
        # Past the cap nothing waits: the origin's breaker answers the next attempt.
        return jitter
    return max(jitter, retry_after)
