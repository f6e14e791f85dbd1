"""Work on the archive that is not fetching: lock, skip checks, asset.json, recovery, seal.

Everything here is blocking. The skip checks (a ``size`` and a small hash each) run on the event
loop; writing, re-hashing and sealing run in worker threads, a batch per call.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import msgspec

from .. import errors
from ..bag.write import TAG_FILES, PayloadFile, write_bag
from ..models import ARCHIVED, DocRecord, Document, Item, Kind, KnownDocument, Row
from ..storage import DATA, Storage, StorageError
from .fresh import is_up_to_date
from .history import sha256_if_readable
from .journal import Journal, Placed
from .placer import Placer, stamp_digest
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


def fresh_items(storage: Storage, items: list[Item], rows: dict[str, Row],
                shown: Callable[[str], str], rehash: bool = False) -> set[str]:
    """Keys of items already archived and unchanged.

    ``shown`` gives a URL in the form the state stores (the run's redactor).
    A ``size`` each (a ``stat`` on a local folder): cheap enough for the event loop. With
    ``rehash`` an archived file counts as unchanged only if its bytes still hash to what the
    state recorded (``run --verify-existing``): that reads every file, so it belongs in a thread.
    """
    fresh = set()
    for item in items:
        row = rows.get(item.key)
        on_disk = storage.size(DATA + row.path) if row is not None and row.path else None
        if not is_up_to_date(item, row, on_disk, shown(item.url)):
            continue
        if rehash and row is not None and row.path and (
                sha256_if_readable(storage, DATA + row.path) != row.sha256):
            continue
        fresh.add(item.key)
    return fresh


def check_docs(storage: Storage, docs: list[Document | KnownDocument], rows: dict[str, Row]
               ) -> tuple[list[Document | KnownDocument], list[tuple[Document, str]]]:
    """Each ``asset.json`` already archived with these bytes, and those to write.

    No folder is walked for an unchanged one: nothing is written there. A re-run is mostly
    these, so this runs on the event loop (a hash of a few KiB and a ``size`` each).
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
                and row.path == doc.path and storage.size(DATA + doc.path) == size):
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
    same, changed = check_docs(placer.storage, list(docs), rows)
    return (fresh_items(placer.storage, items, rows, shown, rehash),
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
    record = DocRecord(doc.key, doc.job, doc.path, size, sha, doc.upstream_version, written=True)
    if not write or _holds(placer.storage, DATA + doc.path, doc.body):
        return record
    placed = Placed(doc.key, doc.job, "", doc.path, size, sha,
                    doc.upstream_version, None, None, kind=Kind.DOC)
    try:
        placer.place_bytes(doc.body, placed, row.sha256 if row is not None else None, "")
    except errors.FetchError as exc:
        return msgspec.structs.replace(record, written=False, error=exc.message)
    except StorageError as exc:
        return msgspec.structs.replace(record, written=False,
                                   error=f"the archive's object store failed: {exc}")
    return record


def _holds(storage: Storage, key: str, body: bytes) -> bool:
    """Whether the object at ``key`` is already exactly ``body`` (a state lost, bytes kept)."""
    if storage.size(key) != len(body):
        return False
    try:
        return storage.read(key) == body
    except OSError:
        return False


def recover(store: Store, storage: Storage, journal_path: Path, now: str) -> int:
    """Replay the journal of a crashed run: files it placed but never recorded.

    Each is re-hashed (there are few: only those between a journal entry and the next commit),
    so a crash between journaling and placing can never record bytes that are not there.
    """
    journal = Journal(journal_path)
    count = replay(store, storage, journal, now)
    journal.clear()
    return count + replay_workers(store, storage, journal_path.parent, now)


def replay_workers(store: Store, storage: Storage, state: Path, now: str) -> int:
    """Record what a cluster's workers placed into a local archive (each journals into a file
    of its own under ``journals/``) but never reported."""
    return sum(replay(store, storage, Journal(path), now, skip_recorded=True)
               for path in sorted(state.glob("journals/*.log")))


def replay(store: Store, storage: Storage, journal: Journal, now: str, *,
           skip_recorded: bool = False) -> int:
    """Record every journaled placement whose bytes are in place (idempotent).

    ``skip_recorded``: a worker's journal is never emptied during its run, so most of it is
    already in the state; those entries need no re-hash.
    """
    entries = list(journal.replay())
    if skip_recorded and entries:
        rows = store.rows([p.key for p in entries])
        entries = [p for p in entries if (row := rows.get(p.key)) is None
                   or (row.path, row.sha256) != (p.path, p.sha256)]
    placed = [p for p in entries if in_place(storage, p)]
    for p in placed:  # just re-hashed: a streamed object that missed its stamp gets it
        # Only a file past whole_up_to is streamed; a smaller one was put with its digest,
        # so its metadata is not asked for (a request per entry into an object store).
        if p.size > storage.whole_up_to and not _digest_stored(storage, DATA + p.path):
            stamp_digest(storage, p)
    return store.record_placed(placed, now) if placed else 0


def in_place(storage: Storage, placed: Placed) -> bool:
    """The bytes a placement describes are at its path (re-hashed: an entry is journaled
    before its bytes are placed)."""
    key = DATA + placed.path
    return (storage.size(key) == placed.size
            and sha256_if_readable(storage, key) == placed.sha256)


def _digest_stored(storage: Storage, key: str) -> bool:
    """The object carries its SHA-256, or its store keeps no metadata (a folder)."""
    try:
        meta = storage.metadata(key)
    except StorageError:
        return True  # unknown: nothing to mend from here
    return not meta or "sha256" in meta


def seal(store: Store, storage: Storage, agent: str) -> bool:
    """Rewrite the bag's tag files from the state: every archived file, sorted by path.

    Skipped (False) when no archived file changed since this agent's last seal and the tag
    files are all there: on a re-run with nothing new, rewriting a manifest of a million lines
    would be most of the run. A seal interrupted half-way leaves no tag manifest, and any
    change to an archived file clears the mark in the transaction that records it.
    """
    if store.sealed_by() == agent and all(storage.size(name) is not None for name in TAG_FILES):
        return False
    write_bag(storage, _payload(store), agent=agent)
    store.set_sealed(agent)
    return True


def _payload(store: Store) -> Iterator[PayloadFile]:
    for path, sha, size in store.payload():
        yield PayloadFile(PurePosixPath(path), sha, size)
