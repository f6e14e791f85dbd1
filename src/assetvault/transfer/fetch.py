"""One item → one verified file: partial file, Range resume, streaming hash, checks, placement.

A file appears under ``data/`` only complete and verified: it is written under the state's
``partial/`` folder and placed (renamed, or put) after every check passed; into an object
store a fresh large download also streams into its upload, completed only then.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import hashlib
import logging
import random
import re
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

import msgspec

from .. import errors
from ..archive.journal import Placed
from ..archive.layout import extension_for
from ..archive.placer import Placer
from ..models import Item, Outcome, Status
from ..net.client import Chunk, Response
from ..net.http import Credentials, Http, status_error
from ..net.limits import Bandwidth, SpeedGuard
from ..net.policy import RetryPolicy
from ..redact import Redactor, redact_url
from ..storage import DATA, Meta, StorageError, Stream
from . import resume
from .partial import Partial
from .resume import Held
from .sink import Digests, Sink

INLINE = 256 * 1024  # bodies read whole (up to RESUMABLE) up to this size: on the loop
# A body past this always goes through a partial file, into any archive: a download broken
# off (a reset, a killed run) resumes by Range from what it kept (SPEC 4), never from byte 0.
RESUMABLE = 1 << 20
log = logging.getLogger("assetvault")
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")


class JobFetch(msgspec.Struct, frozen=True):
    """What a job's settings say about fetching its files."""

    retries: int
    timeout: float
    max_file_size: int
    credentials: Credentials | None = None
    allow_hosts: tuple[str, ...] = ()
    min_speed: float = 0.0  # bytes/s over `timeout` seconds; below it an attempt is stalled


class _Fetched(msgspec.Struct, frozen=True):
    digests: Digests
    etag: str | None
    last_modified: str | None
    content_type: str | None
    path: str | None = None  # set when the file is already in place
    upload: Stream | None = None  # the object store's upload the bytes went to, uncommitted


class Fetcher:
    """Moves the bytes of items into the archive."""

    def __init__(
        self,
        http: Http,
        placer: Placer,
        partial: Path,
        executor: Executor,
        *,
        bandwidth: Bandwidth | None = None,
        on_bytes: Callable[[int], None] = lambda n: None,
        rand: Callable[[], float] = random.random,
        redactor: Redactor | None = None,
    ) -> None:
        """``partial`` is the folder of partial downloads (local, beside the run's state)."""
        # The run's redactor: an item's URL is stored and shown in the one form it gives.
        self._shown = (redactor or Redactor()).url
        self._placer = placer
        self._whole_up_to = placer.storage.whole_up_to
        # What a crashed run left: only those items look for a resumable partial.
        self._leftover = {p.stem for pattern in ("*.json", "*.part")
                          for p in partial.glob(pattern)}
        self._scratch = str(partial)
        self._http = http
        self._executor = executor
        self._bandwidth = bandwidth or Bandwidth(0)
        self._on_bytes = on_bytes
        self._rand = rand

    async def fetch(self, item: Item, job: JobFetch, previous: str | None = None) -> Outcome:
        """Fetch one item with retries; never raises for the item's own failures.

        ``previous`` is the SHA-256 of the file archived at the item's path before, if any:
        the old bytes go to the history under that name when the new ones replace them.
        """
        partial = self._partial(item)
        shown = partial.shown
        if self._leftover and partial.name in self._leftover:
            await asyncio.to_thread(partial.load)
        policy = RetryPolicy(job.retries, self._http.limits, rand=self._rand)
        try:
            result = await policy.run(lambda: self._attempt(item, job, partial, previous),
                                      item.url)
            path = result.path or await self._place(item, partial, result, previous)
        except errors.FetchError as exc:
            error = exc.message
        except StorageError as exc:
            error = f"the archive's object store failed: {exc}"
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise errors.RunFatalError("the disk is full") from exc
            error = f"file system error: {exc.strerror}"
        else:
            return Outcome(item.key, item.job, Status.DOWNLOADED, shown, path,
                           result.digests.size, result.digests.sha256,
                           upstream_version=item.upstream_version, etag=result.etag,
                           last_modified=result.last_modified, fetched_bytes=partial.fetched)
        if partial.held is None and partial.touched:
            await asyncio.to_thread(partial.discard)
        return Outcome(item.key, item.job, Status.FAILED, shown, item.path, error=error,
                       upstream_version=item.upstream_version, fetched_bytes=partial.fetched)

    def _partial(self, item: Item) -> Partial:
        return Partial(self._scratch, item.key, self._shown(item.url))

    async def _attempt(self, item: Item, job: JobFetch, partial: Partial,
                       previous: str | None) -> _Fetched:
        # A resumed answer that does not continue the partial's representation starts the file
        # over at once: the second request has no Range, so it cannot be refused that way.
        try:
            for _ in range(2):
                offset = partial.offset()
                headers = {"Accept-Encoding": "identity"}
                if offset > 0 and partial.held is not None and partial.held.if_range is not None:
                    headers["Range"] = f"bytes={offset}-"
                    headers["If-Range"] = partial.held.if_range
                async with self._http.download(item.url, headers=headers,
                                               credentials=job.credentials, timeout=job.timeout,
                                               allow_hosts=job.allow_hosts) as resp:
                    decision = resume.decide(offset, partial.held, resp.status, resp.headers,
                                             resp.content_length)
                    if isinstance(decision, resume.Restart):
                        log.info("%s: %s; starting over", partial.shown, decision.reason)
                        await asyncio.to_thread(partial.discard)
                        continue
                    if isinstance(decision, resume.Refuse):
                        raise errors.RetryableError(decision.reason, url=partial.shown)
                    if decision is None:
                        raise status_error(resp, item.url, frozenset())
                    return await self._receive(resp, item, job, partial, decision, previous)
            raise errors.RetryableError("the server would not send the file from its start",
                                        url=partial.shown)
        except errors.IntegrityError:
            # The bytes on disk are suspect: the next attempt starts from nothing.
            await asyncio.to_thread(partial.discard)
            raise

    async def _receive(self, resp: Response, item: Item, job: JobFetch,
                       partial: Partial, start: resume.Start, previous: str | None) -> _Fetched:
        total = start.total
        expected_md5 = _expected_md5(resp, item, whole=start.offset == 0 and resp.status == 200)
        _check_size_allowed(total, job.max_file_size, item.url)
        encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            # Asked for identity, got an encoding: its bytes are what the server sent, and
            # they are stored (and checked) as sent, never decoded (SPEC section 10).
            log.warning("%s: the server sent Content-Encoding %r unasked; storing its bytes "
                        "as sent", partial.shown, encoding[:40])
        guard = SpeedGuard(job.min_speed, job.timeout)
        if start.offset == 0 and total is not None and total <= RESUMABLE:
            return await self._small(resp, item, partial, total, expected_md5, previous, guard)
        etag, modified = resp.headers.get("ETag"), resp.headers.get("Last-Modified")
        fresh = start.offset == 0
        if fresh:
            if partial.touched:
                # The old bytes go before the new version is named: a crash between the two
                # must never leave one version's bytes named as another's.
                await asyncio.to_thread(partial.discard)
            partial.held = Held(etag, modified, total)
        content_type = resp.headers.get("Content-Type")
        # A fresh download past what the store takes whole streams into it; a resumed one,
        # or one the store takes in one request, is staged (a resumed one's kept bytes would
        # have to be sent first, while the resumed response waits unread).
        streamed = fresh and (total is None or total > self._whole_up_to)
        upload = (self._upload(item, partial, _final_path(item, content_type), total)
                  if streamed else None)
        # The partial file is named with its version as the sink opens it (emptied first).
        sink = Sink(partial.path, self._executor, want_md5=expected_md5 is not None,
                    tee=upload, on_open=partial.label if fresh else None)
        partial.touched = True
        try:
            await sink.start(start.offset)
            await self._stream(resp, sink, partial, job.max_file_size, guard)
            digests = await sink.finish()
            _check(digests, item, total, expected_md5, partial.shown)
        except BaseException:
            if upload is not None:
                await upload.abort()
            raise
        return _Fetched(digests, etag, modified, content_type, upload=upload)

    def _upload(self, item: Item, partial: Partial, path: str,
                total: int | None) -> Stream | None:
        """The object store's upload that this download feeds as it goes, where it takes one
        (the size must be known: the upload is sized to it and the store caps it)."""
        if total is None:
            return None
        meta = Meta("", partial.shown, item.upstream_version, item.key, item.job)
        return self._placer.storage.stream(DATA + path, meta, total)

    async def _small(self, resp: Response, item: Item, partial: Partial,
                     total: int, expected_md5: str | None, previous: str | None,
                     guard: SpeedGuard) -> _Fetched:
        """A body that fits in memory: read it whole, then hash, check, write and place it in
        one step (on the loop itself when small; see INLINE). A broken connection costs a
        retry from the start, never more than RESUMABLE bytes."""
        body = await self._read_small(resp, partial, total, guard)
        etag, modified = resp.headers.get("ETag"), resp.headers.get("Last-Modified")
        path = _final_path(item, resp.headers.get("Content-Type"))
        args = (body, item, total, expected_md5, path, etag, modified, previous, partial.shown)
        if len(body) <= INLINE:
            # A thread hop costs more than this work: each one ping-pongs the GIL (measured
            # here: ~70 futex calls per file, and a slower run even with only the system calls
            # in the thread), while hashing 256 KiB takes ~0.3 ms.
            digests = self._store_small(*args)
        else:
            digests = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._store_small, *args)
        if partial.touched:  # an earlier attempt's partial of a version now gone
            await asyncio.to_thread(partial.discard)
        return _Fetched(digests, etag, modified, resp.headers.get("Content-Type"), path)

    def _store_small(self, body: bytes, item: Item, total: int, expected_md5: str | None,
                     path: str, etag: str | None, modified: str | None,
                     previous: str | None, shown: str) -> Digests:
        md5 = hashlib.md5(body, usedforsecurity=False).hexdigest() if expected_md5 else None
        digests = Digests(len(body), hashlib.sha256(body).hexdigest(), md5)
        _check(digests, item, total, expected_md5, shown)
        placed = Placed(item.key, item.job, shown, path, digests.size,
                        digests.sha256, item.upstream_version, etag, modified)
        self._placer.place_bytes(body, placed, previous, item.url)
        return digests

    async def _read_small(self, resp: Response, partial: Partial, total: int,
                          guard: SpeedGuard) -> bytes:
        """The whole body, watched for trickling and counted against the bandwidth as it
        arrives (most small bodies are one chunk; an object store's take several)."""
        whole = resp.whole()
        if whole is not None:  # no iterator for a body already in (one generator a file)
            size = len(whole)
            partial.fetched += size
            self._on_bytes(size)
            guard.credit(await self._bandwidth.consume(size))
            if size <= total:
                guard.check(size, partial.shown)
            return whole if isinstance(whole, bytes) else bytes(whole)
        chunks: list[Chunk] = []
        size = 0
        async for chunk in resp.chunks():
            chunks.append(chunk)
            size += len(chunk)
            partial.fetched += len(chunk)
            self._on_bytes(len(chunk))
            guard.credit(await self._bandwidth.consume(len(chunk)))
            if size > total:
                break  # a lie about the length: the size check reports it
            guard.check(size, partial.shown)
        if len(chunks) == 1 and isinstance(chunks[0], bytes):
            return chunks[0]
        return b"".join(chunks)  # also one whole block (a bytearray): bytes from here on

    async def _stream(self, resp: Response, sink: Sink, partial: Partial,
                      limit: int, guard: SpeedGuard) -> None:
        fetched = 0
        try:
            async for chunk in resp.chunks():
                await sink.write(chunk)
                fetched += len(chunk)
                partial.fetched += len(chunk)
                self._on_bytes(len(chunk))
                guard.credit(await self._bandwidth.consume(len(chunk)))
                guard.check(fetched, partial.shown)
                if sink.size > limit:
                    raise errors.FetchError(f"file grew past max_file_size ({limit} bytes)",
                                            url=partial.shown)
        except BaseException:
            await sink.abandon()
            raise

    async def _place(self, item: Item, partial: Partial, result: _Fetched,
                     previous: str | None) -> str:
        path = _final_path(item, result.content_type)
        placed = Placed(item.key, item.job, partial.shown, path, result.digests.size,
                        result.digests.sha256, item.upstream_version, result.etag,
                        result.last_modified)
        loop = asyncio.get_running_loop()
        if result.upload is None:
            await loop.run_in_executor(self._executor, self._move, partial, placed, previous)
            return path
        try:
            await loop.run_in_executor(self._executor, self._placer.ready, placed, previous)
            await result.upload.commit(self._placer.meta(placed))
        except BaseException:
            await result.upload.abort()
            raise
        await loop.run_in_executor(self._executor, partial.discard)
        return path

    def _move(self, partial: Partial, placed: Placed, previous: str | None) -> None:
        partial.unname()
        self._placer.place_file(partial.path, placed, previous, partial.shown)
        partial.held = None


def _final_path(item: Item, content_type: str | None) -> str:
    """The item's path, with an extension from the Content-Type when the URL had none."""
    if item.add_extension:
        ext = extension_for("", content_type)
        if ext:
            return item.path + ext
    return item.path


def _check_size_allowed(total: int | None, limit: int, url: str) -> None:
    if total is not None and total > limit:
        raise errors.FetchError(f"file of {total} bytes is over max_file_size ({limit} bytes)",
                                url=redact_url(url))


def _expected_md5(resp: Response, item: Item, *, whole: bool) -> str | None:
    """The MD5 (hex) the server vouches for, if any; only then is MD5 computed at all."""
    azure = _b64_to_hex(resp.headers.get("x-ms-blob-content-md5"))
    if azure:
        return azure
    if whole:
        content_md5 = _b64_to_hex(resp.headers.get("Content-MD5"))
        if content_md5:
            return content_md5
    etag = (resp.headers.get("ETag") or "").removeprefix("W/").strip('"')
    encoded = resp.headers.get("Content-Encoding", "identity").lower() != "identity"
    if item.etag_is_md5 and not encoded and _HEX32.fullmatch(etag):
        return etag.lower()
    return item.expected_md5


def _b64_to_hex(value: str | None) -> str | None:
    if not value:
        return None
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 16 else None


def _check(digests: Digests, item: Item, total: int | None, md5: str | None,
           shown: str) -> None:
    if total is not None and digests.size != total:
        raise errors.IntegrityError(f"got {digests.size} bytes, the server announced {total}",
                                    url=shown)
    if item.expected_size is not None and digests.size != item.expected_size:
        raise errors.IntegrityError(f"got {digests.size} bytes, the API lists "
                                    f"{item.expected_size}", url=shown)
    if md5 is not None and digests.md5 != md5:
        raise errors.IntegrityError(f"MD5 mismatch: got {digests.md5}, the server sent {md5}",
                                    url=shown)
