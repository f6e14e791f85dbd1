"""A circuit breaker per origin, pure: an origin that keeps refusing is left alone.

A refusal is an answer that says "not now" to anyone (429, 503, Spectrum's 403). Backoff with
jitter already spaces retries out; the breaker adds the last line of politeness: after
``threshold`` refusals in a row, with no success between them, the origin is not asked again
in this run, and what is left for it fails with a reason that says so. The run ends; the key
is not banned for hammering.
"""

from __future__ import annotations

import msgspec

DEFAULT_THRESHOLD = 30


class Breaker(msgspec.Struct):
    """Counts consecutive refusals of one origin."""

    threshold: int = DEFAULT_THRESHOLD
    refusals: int = 0
    tripped: bool = False
    retry_after: float = 0.0  # the longest wait the origin asked for, when that tripped it

    def refused(self) -> bool:
        """Record a refusal; True when this one trips the breaker."""
        self.refusals += 1
        if not self.tripped and self.refusals >= self.threshold:
            self.tripped = True
            return True
        return False

    def trip(self) -> bool:
        """Open the breaker at once (the origin asked us to stay away longer than we wait);
        True when it was closed."""
        was_closed, self.tripped = not self.tripped, True
        return was_closed

    def succeeded(self) -> None:
        """Any success resets the count (an open breaker stays open for this run)."""
        if not self.tripped:
            self.refusals = 0
