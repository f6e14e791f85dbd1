"""File-system work on the archive that is not fetching: lock, skip checks, asset.json, seal.

Everything here is blocking. The skip checks (a ``stat`` and a small hash each) run on the event
loop; writing, re-hashing and sealing run in worker threads, a batch per call.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from .. import errors
from ..bag.write import TAG_FILES, PayloadFile, write_bag
from ..models import ARCHIVED, DocRecord, Document, Item, Kind, KnownDocument, Row
from .fresh import is_up_to_date
from .history import sha256_file
from .journal import Journal, Placed
from .paths import ArchivePaths
from .placer import Placer
from .store import Store


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


def _size(path: Path | str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _sha256(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def fresh_items(data: str, items: list[Item], rows: dict[str, Row], shown: Callable[[str], str],
                rehash: bool = False) -> set[str]:
    """Keys of items already archived and unchanged (``data`` is the payload folder + "/").

    ``shown`` gives a URL in the form the state stores (the run's redactor).
    A ``stat`` each: cheap enough for the event loop. With ``rehash`` an archived file counts
    as unchanged only if its bytes still hash to what the state recorded
    (``run --verify-existing``): that reads every file, so it belongs in a thread.
    """
    fresh = set()
    for item in items:
        row = rows.get(item.key)
        on_disk = _size(data + row.path) if row is not None and row.path else None
        if not is_up_to_date(item, row, on_disk, shown(item.url)):
            continue
        if rehash and row is not None and row.path and (
                _sha256(Path(data + row.path)) != row.sha256):
            continue
        fresh.add(item.key)
    return fresh


def check_docs(data: str, docs: list[Document | KnownDocument], rows: dict[str, Row]
               ) -> tuple[list[Document | KnownDocument], list[tuple[Document, str]]]:
    """Each ``asset.json`` already archived with these bytes, and those to write.

    No folder is walked for an unchanged one: nothing is written there. A re-run is mostly
    these, so this runs on the event loop (a hash of a few KiB and a ``stat`` each).
    """
    same: list[Document | KnownDocument] = []
    changed: list[tuple[Document, str]] = []  # with the SHA-256 of its body
    for doc in docs:
        if isinstance(doc, KnownDocument):  # from a remembered page: hash and size known
            sha, size = doc.sha256, doc.size
        else:
            sha, size = hashlib.sha256(doc.body).hexdigest(), len(doc.body)
        row = rows.get(doc.key)
        if (row is not None and row.status in ARCHIVED and row.sha256 == sha
                and row.path == doc.path and _size(data + doc.path) == size):
            same.append(doc)
        else:
            changed.append((doc.rebuild() if isinstance(doc, KnownDocument) else doc, sha))
    return same, changed


def write_docs(placer: Placer, docs: list[tuple[Document, str]], rows: dict[str, Row],
               write: bool) -> list[DocRecord]:
    """Write changed ``asset.json`` files (or, in a dry run, only say they would be)."""
    return [_write_doc(placer, doc, sha, rows.get(doc.key), write) for doc, sha in docs]


def check_batch(placer: Placer, items: list[Item], docs: list[Document],
                rows: dict[str, Row], write: bool, shown: Callable[[str], str],
                rehash: bool = False) -> tuple[set[str], list[DocRecord]]:
    """Keys of items already archived and unchanged; and each document, written if it changed."""
    data = f"{placer.paths.data}/"
    same, changed = check_docs(data, list(docs), rows)
    return (fresh_items(data, items, rows, shown, rehash),
            [_unchanged(doc) for doc in same] + write_docs(placer, changed, rows, write))


def _unchanged(doc: Document | KnownDocument) -> DocRecord:
    if isinstance(doc, KnownDocument):
        sha, size = doc.sha256, doc.size
    else:
        sha, size = hashlib.sha256(doc.body).hexdigest(), len(doc.body)
    return DocRecord(doc.key, doc.job, doc.path, size, sha, doc.upstream_version, written=False)


def _write_doc(placer: Placer, doc: Document, sha: str, row: Row | None,
               write: bool) -> DocRecord:
    size = len(doc.body)
    if not write:
        return DocRecord(doc.key, doc.job, doc.path, size, sha, doc.upstream_version,
                         written=True)
    try:
        final = placer.target(doc.path)
    except errors.FetchError as exc:
        return DocRecord(doc.key, doc.job, doc.path, size, sha, doc.upstream_version,
                         written=False, error=exc.message)
    if not (_size(final) == size and final.read_bytes() == doc.body):
        tmp = placer.paths.partial / f"{sha[:40]}.doc"
        tmp.write_bytes(doc.body)
        placed = Placed(doc.key, doc.job, "", doc.path, size, sha,
                        doc.upstream_version, None, None, kind=Kind.DOC)
        placer.place_file(tmp, placed, row.sha256 if row is not None else None, "")
    return DocRecord(doc.key, doc.job, doc.path, size, sha, doc.upstream_version, written=True)


def link_or_copy(placer: Placer, source: str, placed: Placed) -> None:
    """Put the payload file ``source`` at ``placed.path`` too: a hard link where possible.

    The link is made in the partial folder and placed like any fetched file (journaled, then
    renamed), so a crash never leaves a stray name under ``data/``.
    """
    paths = placer.paths
    tmp = paths.partial / (hashlib.sha256(placed.path.encode()).hexdigest()[:40] + ".link")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(paths.data / source, tmp)
    except OSError:
        shutil.copyfile(paths.data / source, tmp)
    placer.place_file(tmp, placed, None, placed.url)


def recover(store: Store, paths: ArchivePaths, now: str) -> int:
    """Replay the journal of a crashed run: files it placed but never recorded.

    Each is re-hashed (there are few: only those between a rename and the next commit), so a
    crash between journaling and renaming can never record bytes that are not there.
    """
    journal = Journal(paths.journal)
    count = replay(store, paths, journal, now)
    journal.clear()
    # A small body being written when the run died: never placed, never resumable (the run
    # holds the archive's lock, so no other writer owns one).
    for stale in paths.partial.glob("small-*.tmp"):
        stale.unlink(missing_ok=True)
    return count


def replay(store: Store, paths: ArchivePaths, journal: Journal, now: str) -> int:
    """Record every journaled placement whose bytes are in place (idempotent)."""
    placed = [p for p in journal.replay()
              if _size(paths.data / p.path) == p.size and _sha256(paths.data / p.path) == p.sha256]
    return store.record_placed(placed, now) if placed else 0


def seal(store: Store, root: Path, agent: str) -> bool:
    """Rewrite the bag's tag files from the state: every archived file, sorted by path.

    Skipped (False) when no archived file changed since this agent's last seal and the tag
    files are all there: on a re-run with nothing new, rewriting a manifest of a million lines
    would be most of the run. A seal interrupted half-way leaves no tag manifest, and any
    change to an archived file clears the mark in the transaction that records it.
    """
    if store.sealed_by() == agent and all((root / name).is_file() for name in TAG_FILES):
        return False
    write_bag(root, _payload(store), agent=agent)
    store.set_sealed(agent)
    return True


def _payload(store: Store) -> Iterator[PayloadFile]:
    for path, sha, size in store.payload():
        yield PayloadFile(PurePosixPath(path), sha, size)
