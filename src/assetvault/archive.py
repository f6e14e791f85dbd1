"""File-system work on the archive that is not fetching: lock, skip checks, asset.json, seal.

Everything here is blocking and runs in a worker thread, a batch per call.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from . import errors
from .bag import PayloadFile, write_bag
from .models import Document, Item
from .paths import ArchivePaths
from .plan import is_up_to_date
from .store import DocRecord, Row, Store


class ArchiveLock:
    """One run at a time per archive: a second run would corrupt the state of the first."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise errors.UsageError(
                    f"{self._path.parent.parent}: another assetvault run is using this archive; "
                    "wait for it to finish") from None
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _size(path: Path) -> int | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size


def check_batch(paths: ArchivePaths, items: list[Item], docs: list[Document],
                rows: dict[str, Row], write_docs: bool) -> tuple[set[str], list[DocRecord]]:
    """Keys of items already archived and unchanged; and each document, written if it changed."""
    fresh = set()
    for item in items:
        row = rows.get(item.key)
        on_disk = _size(paths.data / row.path) if row is not None and row.path else None
        if is_up_to_date(item, row, on_disk):
            fresh.add(item.key)
    records = [_document(paths, doc, rows.get(doc.key), write_docs) for doc in docs]
    return fresh, records


def _document(paths: ArchivePaths, doc: Document, row: Row | None, write: bool) -> DocRecord:
    sha = hashlib.sha256(doc.body).hexdigest()
    final = paths.data / doc.path
    same = (row is not None and row.status == "complete" and row.sha256 == sha
            and row.path == str(doc.path) and _size(final) == len(doc.body))
    if not same and write:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = paths.partial / f"{sha[:40]}.doc"
        tmp.write_bytes(doc.body)
        os.replace(tmp, final)
    return DocRecord(doc.key, doc.job, doc.path, len(doc.body), sha, doc.upstream_version,
                     written=not same)


def link_or_copy(source: Path, target: Path, scratch: Path) -> None:
    """Put ``source``'s file at ``target`` too: a hard link where the file system allows.

    The link is made in ``scratch`` (outside the payload) and renamed into place, so a crash
    never leaves a stray name under ``data/``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = scratch / (hashlib.sha256(str(target).encode()).hexdigest()[:40] + ".link")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def seal(store: Store, root: Path, agent: str) -> None:
    """Rewrite the bag's tag files from the state: every archived file, sorted by path."""
    write_bag(root, _payload(store), agent=agent)


def _payload(store: Store) -> Iterator[PayloadFile]:
    for path, sha, size in store.payload():
        yield PayloadFile(PurePosixPath(path), sha, size)
