"""Retry arithmetic, pure: which failures are worth another try and how long to wait first."""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from datetime import UTC, datetime

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
BACKOFF_BASE = 0.5  # seconds before the first retry (times jitter)
BACKOFF_CAP = 60.0
RETRY_AFTER_CAP = 600.0  # a server asking for more than this is refused, not obeyed forever


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
        return min(float(value), RETRY_AFTER_CAP)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return min(max(0.0, (when - now).total_seconds()), RETRY_AFTER_CAP)


def next_delay(attempt: int, rand: Callable[[], float], retry_after: float | None) -> float:
    """The wait before attempt ``attempt + 1``: never earlier than the server asked."""
    jitter = backoff(attempt, rand)
    return max(jitter, retry_after) if retry_after is not None else jitter
