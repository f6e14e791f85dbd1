"""Whether an answer to a download request continues the partial file we hold. Pure.

A partial file holds the first bytes of one representation of a file, named by its validator
(ETag or Last-Modified) and its whole size. A ``206`` may be appended to it only when the
server says it continues *that* representation: its range starts where the partial ends and
runs to the end of the same total, and it carries the same validator. Anything else starts
the file again from zero: a server that ignores ``If-Range``, or serves a newer version, must
never get its bytes spliced onto the old ones (SPEC section 10).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec

__all__ = ["Held", "Refuse", "Restart", "Start", "decide"]

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class Held(msgspec.Struct, frozen=True, gc=False):
    """The representation a partial file was started from."""

    etag: str | None = None
    last_modified: str | None = None
    total: int | None = None

    @property
    def if_range(self) -> str | None:
        """What to send as ``If-Range``: a strong ETag, else the date (RFC 9110 §13.1.5)."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified


class Start(msgspec.Struct, frozen=True, gc=False):
    """The body of this answer is the file from byte ``offset``; ``total`` its whole size."""

    offset: int
    total: int | None


class Restart(msgspec.Struct, frozen=True):
    """Throw the partial away and ask for the whole file."""

    reason: str


class Refuse(msgspec.Struct, frozen=True):
    """An answer no request of ours can use (a retryable failure of the attempt)."""

    reason: str


Decision = Start | Restart | Refuse | None  # None: not a file at all (a status error)


def decide(offset: int, held: Held | None, status: int, headers: Mapping[str, str],
           content_length: int | None) -> Decision:
    """What the answer ``status``/``headers`` to a request for bytes ``offset-`` means.

    ``offset`` 0 means no ``Range`` was sent.
    """
    if status == 200:
        return Start(0, content_length)
    if status == 206:
        if offset == 0:
            return _unasked_range(headers, content_length)
        return _continuation(offset, held or Held(), headers, content_length)
    if status == 416 and offset > 0:
        # Never read a 416 as "already complete": fetch the whole file again.
        return Restart("HTTP 416 on resume")
    return None


def _unasked_range(headers: Mapping[str, str], content_length: int | None) -> Decision:
    """A 206 to a request without ``Range``: usable only if it is the whole file."""
    parsed = _content_range(headers)
    if parsed is not None:
        first, last, total = parsed
        if first == 0 and total is not None and last == total - 1 and content_length in (
                None, total):
            return Start(0, total)
    return Refuse("the server sent part of the file (HTTP 206) to a request for all of it")


def _continuation(offset: int, held: Held, headers: Mapping[str, str],
                  content_length: int | None) -> Decision:
    parsed = _content_range(headers)
    if parsed is None:
        return Restart("HTTP 206 without a usable Content-Range")
    first, last, total = parsed
    if first != offset:
        return Restart(f"the server resumed at byte {first}, not at {offset}")
    if total is None:
        return Restart("the resumed range names no total size")
    if held.total is not None and total != held.total:
        return Restart(f"the resumed range names a total of {total} bytes, the partial file "
                       f"was started from one of {held.total}")
    if last != total - 1 or (content_length is not None and content_length != total - first):
        return Restart("the resumed range does not run to the end of the file")
    changed = _changed_validator(held, headers)
    if changed:
        return Restart(changed)
    return Start(offset, total)


def _changed_validator(held: Held, headers: Mapping[str, str]) -> str | None:
    """Why the answer's validators do not name the held representation, or None."""
    etag, modified = headers.get("ETag"), headers.get("Last-Modified")
    if held.if_range is None:
        return "the partial file has no validator"
    if held.etag is not None and etag is None:
        return "the resumed range comes without the ETag the partial file was started with"
    if held.etag is not None and etag != held.etag:
        return "the resumed range comes with another ETag (a newer version of the file)"
    if held.etag is None and etag is not None:
        return "the resumed range comes with an ETag the partial file was not started with"
    if held.last_modified is not None and modified is not None and modified != held.last_modified:
        return "the resumed range comes with another Last-Modified (a newer version)"
    if held.etag is None and modified is None:
        return "the resumed range comes without the validator the partial file was started with"
    return None


def _content_range(headers: Mapping[str, str]) -> tuple[int, int, int | None] | None:
    match = _CONTENT_RANGE.fullmatch(headers.get("Content-Range", "").strip())
    if match is None:
        return None
    first, last = int(match.group(1)), int(match.group(2))
    total = None if match.group(3) == "*" else int(match.group(3))
    if last < first or (total is not None and last >= total):
        return None
    return first, last, total
