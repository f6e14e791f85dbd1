"""An object uploaded while it downloads: obstore's multipart writer, fed from the event loop.

The upload starts with the item's provenance but its SHA-256 (S3 fixes metadata when an
upload starts) and is completed only when the download passed every check; then the object
is copied onto itself with the SHA-256 added (:meth:`S3Storage.stamp`). Until completed it
is invisible at its key; a failed check, a broken download or a cancelled run aborts it, and
what a killed process leaves the next run aborts (:meth:`S3Storage.sweep`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import obstore

from .base import Meta, StorageError
from .s3 import PART, call_async

if TYPE_CHECKING:
    from .s3 import S3Storage


log = logging.getLogger("assetvault")


class _Aborted(Exception):
    """Ends the writer's context with an error: obstore then aborts the multipart upload."""


class S3Stream:
    """One streamed upload; its calls come from the event loop, in order."""

    def __init__(self, storage: S3Storage, key: str, attributes: dict[str, str] | None,
                 size: int) -> None:
        self._storage = storage
        self._key = key
        self._size = size
        # Parts go out as they fill, 16 MiB, one in flight while the next fills: ~32 MiB per
        # upload whatever the file's size, and a write waits while both are full. The download
        # paces a stream: with two in flight, 8 x 128 MiB took the same time (100 MiB/s
        # upstream: 12.10 s against 12.26) for 60 MiB more peak memory (318 against 258).
        self._writer = obstore.open_writer_async(storage.store, key, attributes=attributes,
                                                 buffer_size=PART, max_concurrency=1)
        self._open = True
        self._started = False

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._started:
            self._started = True
            if not self._storage.multipart_free():  # only while the run's sweep still lists
                await asyncio.to_thread(self._storage.before_multipart)
        await call_async(self._writer.write(data))

    async def commit(self, meta: Meta) -> None:
        """Complete the upload (the object appears whole), then stamp its SHA-256. Shielded:
        a run stopped now still finishes both (the stop's journal replay then records it),
        rather than leave an upload half-completed."""
        self._open = False
        await asyncio.shield(self._complete(meta))

    async def _complete(self, meta: Meta) -> None:
        try:
            await call_async(self._writer.close())
        except BaseException:
            await self._abort_writer()  # its parts would wait for the next run's sweep
            raise
        # From here the object is whole at its key and must be recorded: a failed stamp
        # costs its metadata the digest (verify --fast says so), never the item.
        try:
            await asyncio.to_thread(self._storage.stamp, self._key, meta, self._size)
        except StorageError as exc:
            log.warning("%s: complete, but its SHA-256 could not be added to its metadata "
                        "(%s)", self._storage.where(self._key), exc)
            self._storage.note(self._key, self._size)

    async def abort(self) -> None:
        if self._open:
            self._open = False
            await self._abort_writer()

    async def _abort_writer(self) -> None:
        try:
            # Shielded: a cancelled download still aborts its upload before it goes.
            await asyncio.shield(call_async(self._writer.__aexit__(_Aborted, _Aborted(), None)))
        except StorageError as exc:  # the next run's sweep aborts what is left
            log.debug("%s: aborting its upload failed: %s", self._storage.where(self._key), exc)
