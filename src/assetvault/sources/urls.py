"""A plain list of URLs: text (one a line) or CSV (``url,path``), streamed in batches.

The file is read in a worker thread, ``BATCH`` lines at a time, so a list of millions of lines
neither blocks the event loop nor sits in memory. Only an 8-byte digest of every path taken is
kept, to keep two lines from landing on one file.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
from collections.abc import AsyncIterator, Iterator
from itertools import islice
from typing import TextIO

import msgspec
from msgspec import field

from ..archive import layout
from ..config.jobs import UrlsJob
from ..models import Entry, Item, ListingFailure
from ..redact import Redactor
from ._base import one_line

BATCH = 1000
FIRST_FREE = 2  # parts[0] is "urls", parts[1] the job: names from the file start after them


class Line(msgspec.Struct, frozen=True):
    """One URL of the list, with the path the CSV gave it (if any)."""

    url: str
    path: str | None = None


# --- parsing: pure ------------------------------------------------------------------------------


def csv_columns(first_line: str) -> tuple[int, int] | None:
    """(url column, path column) when the first line is a ``url,path`` header, else None."""
    row = next(csv.reader([first_line]), [])
    names = [cell.strip().lower() for cell in row]
    if "url" in names and "path" in names:
        return names.index("url"), names.index("path")
    return None


def text_lines(lines: Iterator[str]) -> Iterator[Line]:
    """One URL a line; blank lines and ``#`` comments skipped."""
    for raw in lines:
        url = raw.strip()
        if url and not url.startswith("#"):
            yield Line(url)


def csv_lines(lines: Iterator[str], columns: tuple[int, int]) -> Iterator[Line]:
    """Rows after the header; extra columns ignored, blank rows skipped."""
    url_col, path_col = columns
    for row in csv.reader(lines):
        if not any(cell.strip() for cell in row):
            continue
        url = row[url_col].strip() if url_col < len(row) else ""
        path = row[path_col].strip() if path_col < len(row) else ""
        yield Line(url, path or None)


def read_lines(handle: TextIO) -> Iterator[Line]:
    """The URLs of an open list, text or CSV by its first line."""
    first = handle.readline()
    columns = csv_columns(first)
    if columns is None:
        return text_lines(_chain(first, handle))
    return csv_lines(iter(handle), columns)


def _chain(first: str, rest: TextIO) -> Iterator[str]:
    yield first
    yield from rest


class PathClaims(msgspec.Struct):
    """Paths already given out in this list; a taken path (or a file where a folder is needed,
    or a folder where a file is) gets a deterministic variant instead."""

    files: set[bytes] = field(default_factory=set)
    folders: set[bytes] = field(default_factory=set)

    def claim(self, path: str, url: str) -> str:
        parts = path.split("/")
        last = len(parts) - 1
        for i in range(FIRST_FREE, last + 1):
            original, n = parts[i], 0
            while self._taken(parts[: i + 1], is_file=i == last):
                # A renamed folder is named after the folder, so its other files follow it there;
                # a renamed file after its own URL.
                seed = url if i == last else "/".join(parts[:i + 1])
                parts[i] = layout.tagged(original, layout.short_hash(f"{seed}#{n}", 8))
                n += 1
        for i in range(FIRST_FREE, last):
            self.folders.add(_digest(parts[: i + 1]))
        self.files.add(_digest(parts))
        return "/".join(parts)

    def _taken(self, parts: list[str], *, is_file: bool) -> bool:
        digest = _digest(parts)
        return digest in self.files or (is_file and digest in self.folders)


def _digest(parts: list[str]) -> bytes:
    return hashlib.blake2b("/".join(parts).encode("utf-8", "surrogatepass"),
                           digest_size=8).digest()


def map_line(job: UrlsJob, line: Line, claims: PathClaims) -> Item:
    """The item of one line: its path from the CSV, else from the URL's host and path."""
    path = claims.claim(layout.urls_path(job.name, line.url, line.path), line.url)
    return Item(key=path, job=job.name, url=line.url, path=path)


# --- reading: in a worker thread ----------------------------------------------------------------


class UrlsSource:
    """Streams a URL list into items."""

    def __init__(self, job: UrlsJob) -> None:
        self.job = job
        self.redactor = Redactor(value for _, value in job.headers)

    async def batches(self) -> AsyncIterator[list[Entry]]:
        """One item per URL line, in file order, a batch of lines at a time; a failure to
        read ends the list."""
        claims = PathClaims()
        try:
            handle = await asyncio.to_thread(self._open)
        except OSError as exc:
            yield [self._failure(f"cannot read urls_file: {exc.strerror or exc}")]
            return
        try:
            lines = await asyncio.to_thread(read_lines, handle)
            while batch := await asyncio.to_thread(_take, lines, BATCH):
                yield [map_line(self.job, line, claims) for line in batch]
        except (OSError, csv.Error) as exc:
            yield [self._failure(f"cannot read urls_file: {exc}")]
        finally:
            await asyncio.to_thread(handle.close)

    def _open(self) -> TextIO:
        # utf-8-sig: spreadsheets often start a CSV with a byte-order mark.
        return open(self.job.urls_file, encoding="utf-8-sig", errors="replace", newline="")

    def _failure(self, reason: str) -> ListingFailure:
        return ListingFailure(job=self.job.name, key=f"urls/{layout.safe_segment(self.job.name)}",
                              url=str(self.job.urls_file), error=one_line(reason, self.redactor))


def _take(lines: Iterator[Line], n: int) -> list[Line]:
    return list(islice(lines, n))
