"""A partial file being written, hashed on the way.

Bytes are gathered on the event loop and handed to a worker thread about a megabyte at a
time: the thread writes and hashes (hashlib releases the GIL on large buffers), so the loop
never hashes a large buffer itself and pays one thread hop per megabyte, not one per chunk.
One flush is in flight while the next megabyte arrives (the socket is read while the last one
is hashed); a sink never has two, so its bytes reach the file and the hash in order.
A flush, once handed over, always runs to its end: a cancelled download waits for it before
the file is closed, so a partial file never has a hole where a flush was dropped (a resume
would then hash and keep bytes the server never sent there).
MD5 is kept only when the server sent an MD5 to compare: it costs three times SHA-256 here.
With a ``tee`` (an object store's upload in parts), every megabyte also goes there from the
loop, in order, as it is handed to the thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import os
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import TypeVar

import msgspec

from ..net.blocks import BLOCKS
from ..net.client import Chunk
from ..storage import Stream

T = TypeVar("T")

FLUSH_BYTES = 1 << 20
READ_BYTES = 1 << 20
IOV_MAX = 512  # below every platform's limit on buffers per writev


class Digests(msgspec.Struct, frozen=True, gc=False):
    size: int
    sha256: str
    md5: str | None


class Sink:
    """Append-only writer of one partial file with streaming SHA-256 (and MD5 on demand)."""

    def __init__(self, path: Path, executor: Executor, *, want_md5: bool,
                 tee: Stream | None = None,
                 on_open: Callable[[int], None] | None = None) -> None:
        self.path = path
        self._tee = tee
        self._on_open = on_open  # called in the thread with a fresh file's descriptor
        self._executor = executor
        self._sha = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False) if want_md5 else None
        self._chunks: list[Chunk] = []
        self._buffered = 0
        self._fd: int | None = None
        self._flushing: concurrent.futures.Future[None] | None = None  # the flush in flight
        self.size = 0  # bytes hashed and written (or buffered)

    async def start(self, offset: int) -> None:
        """Open the partial file: keep and re-hash its first ``offset`` bytes, or start empty.
        A tee takes only a file from its start: the kept bytes would have to go to it first,
        while the resumed response waits unread (Fetcher stages a resumed file instead)."""
        if self._tee is not None and offset > 0:
            raise ValueError("a tee takes a file from its first byte only")
        await self._run(self._open, offset)

    async def write(self, chunk: Chunk) -> None:
        # Chunks are kept as received and written with one writev: no copy into a buffer.
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        self.size += len(chunk)
        if self._buffered >= FLUSH_BYTES:
            if self._flushing is not None:
                await _settled(self._flushing)  # raises that flush's error, if any
            chunks = self._take()
            self._flushing = self._executor.submit(self._write, chunks)
            if self._tee is not None:
                await self._tee.write(_joined(chunks))

    def _take(self) -> list[Chunk]:
        chunks, self._chunks, self._buffered = self._chunks, [], 0
        return chunks

    async def finish(self) -> Digests:
        """Flush, close and return the digests of the whole file."""
        chunks = self._take()
        await self._run(self._finish, chunks)
        if self._tee is not None and chunks:
            await self._tee.write(_joined(chunks))
        md5 = self._md5.hexdigest() if self._md5 is not None else None
        return Digests(self.size, self._sha.hexdigest(), md5)

    async def abandon(self) -> None:
        """Flush what arrived (a later attempt resumes from it) and close. Called while an
        error is on its way up: that error is the one to report, so a flush's own is not."""
        with contextlib.suppress(Exception):
            await self._run(self._finish, self._take())

    async def _run(self, fn: Callable[[T], None], arg: T) -> None:
        await _settled(self._executor.submit(fn, arg))

    def _open(self, offset: int) -> None:
        flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(self.path, flags, 0o644)
        if offset <= 0:
            if os.fstat(self._fd).st_size:
                # Only a leftover is emptied: ext4 starts writing back a file truncated to 0
                # when it is closed (auto_da_alloc), 120-200 ms per 128 MiB file here, and a
                # later fsync of the bag's folder then waits for those blocks too.
                os.ftruncate(self._fd, 0)
            if self._on_open is not None:
                self._on_open(self._fd)
            return
        with open(self.path, "rb") as f:
            remaining = offset
            while remaining > 0:
                block = f.read(min(READ_BYTES, remaining))
                if not block:
                    break
                self._hash(block)
                remaining -= len(block)
        kept = offset - remaining
        os.ftruncate(self._fd, kept)
        os.lseek(self._fd, kept, os.SEEK_SET)
        self.size = kept

    def _hash(self, data: bytes | bytearray | memoryview) -> None:
        self._sha.update(data)
        if self._md5 is not None:
            self._md5.update(data)

    def _write(self, chunks: list[Chunk]) -> None:
        assert self._fd is not None
        for chunk in chunks:
            self._hash(chunk)
        pending = [memoryview(c) for c in chunks if c]
        while pending:
            written = os.writev(self._fd, pending[:IOV_MAX])
            while pending and written >= len(pending[0]):
                written -= len(pending.pop(0))
            if written:
                pending[0] = pending[0][written:]
        if self._tee is None:  # hashed and written: nobody reads these bytes again
            for chunk in chunks:
                BLOCKS.give(chunk)

    def _finish(self, chunks: list[Chunk]) -> None:
        """The last flush, after the one in flight (in this thread: that one was handed over
        earlier, so it is running or done), then close; the first error is raised."""
        if self._fd is None:
            return
        try:
            if self._flushing is not None:
                self._flushing.result()
            if chunks:
                self._write(chunks)
        finally:
            os.close(self._fd)
            self._fd = None


def _joined(chunks: list[Chunk]) -> Chunk:
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _settled(flush: concurrent.futures.Future[None]) -> None:
    """Wait for a flush; a cancellation of the waiter never cancels the flush itself."""
    await asyncio.shield(asyncio.wrap_future(flush))
