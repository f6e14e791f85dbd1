"""An object-store archive's state travels with it: a snapshot of the SQLite state under
``.assetvault/state.sqlite``, restored on a machine that has none, then reconciled with a
listing of ``data/`` (each object carries its key, job and SHA-256 as metadata).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from ..models import Kind
from ..storage import DATA
from ..storage.base import SNAPSHOT
from ..storage.open import check_store
from .history import sha256_if_readable
from .journal import Placed
from .placer import stamp_digest
from .store import Store

if TYPE_CHECKING:
    from ..storage.s3 import S3Storage

log = logging.getLogger("assetvault")
SNAPSHOT_EVERY = 300.0  # seconds: SPEC 7 asks for at least every 5 minutes


def snapshot_every(environ: Mapping[str, str] = os.environ) -> float:
    """The snapshot interval: 5 minutes, or less where ASSETVAULT_SNAPSHOT_SECONDS says so
    (a test, or an operator whose machines die often); never more than the SPEC allows."""
    try:
        asked = float(environ.get("ASSETVAULT_SNAPSHOT_SECONDS", SNAPSHOT_EVERY))
    except ValueError:
        return SNAPSHOT_EVERY
    return min(max(asked, 0.1), SNAPSHOT_EVERY)
_SHA256 = re.compile(r"[0-9a-f]{64}")
HEADS = 16  # metadata requests in flight while reconciling: each is a round trip


def take_snapshot(database: Path, storage: S3Storage) -> None:
    """Copy the state (consistent, with the run still writing) to the archive, and remember
    which snapshot this machine's state matches."""
    fd, temp = tempfile.mkstemp(prefix="snapshot-", dir=database.parent)
    os.close(fd)
    try:
        with contextlib.closing(sqlite3.connect(database)) as source, \
                contextlib.closing(sqlite3.connect(temp)) as target:
            source.backup(target)
        storage.put_file(SNAPSHOT, Path(temp))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    _synced(database).write_text(storage.etag(SNAPSHOT) or "", encoding="utf-8")


def restore_snapshot(database: Path, storage: S3Storage) -> bool:
    """Bring the archive's snapshot here when this machine has no state, or a state older than
    the snapshot (another machine ran since this one last did); whether one came.

    A local state newer than the snapshot (this machine's run died after its last snapshot)
    is kept: its snapshot is still the archive's, so the ETags match.
    """
    etag = storage.etag(SNAPSHOT)
    if etag is None or (database.exists() and not _behind(database, etag)):
        return False
    database.parent.mkdir(parents=True, exist_ok=True)
    temp = database.with_name(database.name + ".restoring")
    with open(temp, "wb") as out:
        for block in storage.blocks(SNAPSHOT):
            out.write(block)
    for stale in (database.with_name(database.name + "-wal"),
                  database.with_name(database.name + "-shm")):
        stale.unlink(missing_ok=True)
    os.replace(temp, database)
    _synced(database).write_text(etag, encoding="utf-8")
    return True


def _synced(database: Path) -> Path:
    """Beside the state: the ETag of the archive's snapshot it was last copied to or from."""
    return database.with_name(database.name + ".synced")


def _behind(database: Path, etag: str) -> bool:
    try:
        synced = _synced(database).read_text(encoding="utf-8")
    except OSError:
        return False  # never synced (an older assetvault): keep what is here
    return bool(synced) and synced != etag


def open_remote(storage: S3Storage, database: Path, *, claim: bool) -> bool:
    """Before a run on an object store: check it (exit 2 on bad settings; ``claim`` an empty
    prefix as an archive), bring its state here if this machine has none, and list ``data/``
    once; whether a snapshot was restored."""
    check_store(storage, claim=claim)
    restored = restore_snapshot(database, storage)
    storage.load_listing()
    return restored


def reconcile(store: Store, storage: S3Storage, now: str) -> int:
    """Record each object under ``data/`` that the state does not know with that size and
    whose metadata says what it is (a run that died after its last snapshot placed it)."""
    listing = storage.listing()
    known = {path: size for path, _, size in store.payload()}
    unknown = [key for key, size in listing.items() if known.get(key[len(DATA):]) != size]
    if not unknown:
        return 0
    with ThreadPoolExecutor(HEADS, thread_name_prefix="assetvault-heads") as pool:
        found = list(pool.map(lambda key: _placed(storage, key, listing[key]), unknown))
    placed = [p for p in found if p is not None]
    return store.record_placed(placed, now) if placed else 0


def _placed(storage: S3Storage, key: str, size: int) -> Placed | None:
    try:
        meta = storage.metadata(key)
    except OSError:
        return None
    if not placed_here(meta, key):
        return None
    stored = meta.get("sha256")
    sha256 = stored or _read_back(storage, key)
    placed = placed_from(meta, key, size, sha256) if sha256 else None
    if placed is not None and not stored:
        stamp_digest(storage, placed)
    return placed


def placed_here(meta: Mapping[str, str], key: str) -> bool:
    """The object at ``key`` was placed there by assetvault (its metadata names an item),
    not copied there from another item's object (a server-side copy keeps its metadata)."""
    return (all(meta.get(name) for name in ("key", "job"))
            and unquote(meta.get("object", "")) == key)


def placed_from(meta: Mapping[str, str], key: str, size: int, sha256: str) -> Placed | None:
    """The placement the metadata of the object at ``key`` describes, with ``size`` and
    ``sha256`` (None when that is no digest: not our writing)."""
    if not _SHA256.fullmatch(sha256):
        return None
    version = meta.get("version")
    return Placed(unquote(meta["key"]), unquote(meta["job"]),
                  unquote(meta.get("source-url", "")), key[len(DATA):], size, sha256,
                  unquote(version) if version else None, None, None,
                  kind=meta.get("kind", Kind.FILE))


def _read_back(storage: S3Storage, key: str) -> str | None:
    """The SHA-256 of a streamed object whose run died between completing its upload (only
    ever done once every check passed) and stamping its digest: read back from the store,
    never fetched again."""
    sha256 = sha256_if_readable(storage, key)
    if sha256 is None:
        log.warning("%s: could not read it back to record it", storage.where(key))
    return sha256
