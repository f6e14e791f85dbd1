"""Deterministic randomness and the date formats both APIs use."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta

__all__ = ["EARLIEST", "dotnet_date", "envelope_date", "hkey", "hnum", "rng", "seconds_ceil",
           "spread_date"]

_EPOCH = datetime(2019, 1, 1, tzinfo=UTC)
EARLIEST = _EPOCH  # no generated date is before it
_SPAN_SECONDS = 4 * 365 * 86400


def hkey(*parts: object) -> bytes:
    """A 16-byte digest of ``parts``: the identity of anything generated."""
    text = "\x1f".join(str(part) for part in parts)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def hnum(*parts: object) -> int:
    """A non-negative 64-bit integer from ``parts``."""
    return int.from_bytes(hkey(*parts)[:8], "big")


def rng(*parts: object) -> random.Random:
    """A private RNG per record, so one record never depends on another's draws."""
    return random.Random(hkey(*parts))


def spread_date(*parts: object) -> datetime:
    """A deterministic UTC instant between 2019 and 2023, with millisecond precision."""
    ms = hnum("date", *parts) % (_SPAN_SECONDS * 1000)
    return _EPOCH + timedelta(milliseconds=ms)


def seconds_ceil(moment: datetime) -> datetime:
    """Round up to a whole second.

    A touched record must compare strictly after any ``last_updated_at`` taken before the touch,
    and that parameter has second resolution.
    """
    if moment.microsecond == 0:
        return moment
    return moment.replace(microsecond=0) + timedelta(seconds=1)


def dotnet_date(moment: datetime) -> str:
    """Spectrum's record dates: naive ISO with up to 3 fraction digits, zeros dropped."""
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    millis = moment.microsecond // 1000
    if millis:
        text += "." + f"{millis:03d}".rstrip("0")
    return text


def envelope_date(moment: datetime) -> str:
    """Spectrum's envelope date: 7 fraction digits and an explicit offset."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}0+00:00"
