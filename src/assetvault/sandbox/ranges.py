"""``Range`` and ``If-Range`` as an HTTP/1.1 origin reads them (RFC 9110 §14)."""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import parsedate_to_datetime

__all__ = ["RangeNotSatisfiable", "if_range_holds", "parse_range"]

_SPEC = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class RangeNotSatisfiable(Exception):
    """The range is well-formed but lies outside the file: answer 416."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``[start, stop)`` of a single byte range, or None to serve the whole file.

    A malformed header or one with several ranges is ignored, as RFC 9110 allows.
    """
    if not header:
        return None
    match = _SPEC.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - suffix), size
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable
    stop = size if not last else min(size, int(last) + 1)
    return start, stop


def if_range_holds(header: str | None, etag: str, modified: datetime) -> bool:
    """Whether a ranged answer is allowed: no ``If-Range``, or one that still matches.

    ETags compare strongly (a weak one never matches); a date must equal Last-Modified exactly.
    """
    if header is None:
        return True
    value = header.strip()
    if value.startswith('"') or value.startswith("W/"):
        return value == etag
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    if when.tzinfo is None:
        return False
    return int(when.timestamp()) == int(modified.timestamp())
