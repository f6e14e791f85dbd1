"""The archive never deletes: bytes that an upstream change replaces are kept here.

``.assetvault/history/{payload path}.{UTC date}.{sha256 prefix}{extension}``: outside the payload
(so the bag stays valid), named by when they were replaced and what they were.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import PurePosixPath

from ..storage import DATA, HISTORY, Storage


def sha256_of(storage: Storage, key: str) -> str:
    """SHA-256 of a whole object, read a block at a time."""
    digest = hashlib.sha256()
    for block in storage.blocks(key):
        digest.update(block)
    return digest.hexdigest()


def sha256_if_readable(storage: Storage, key: str) -> str | None:
    """SHA-256 of a whole object; None when the store cannot read it (StorageError is an
    OSError too)."""
    try:
        return sha256_of(storage, key)
    except OSError:
        return None


def history_key(key: str, sha256: str, when: datetime) -> str:
    """Where the bytes at payload ``key`` go when they are replaced at ``when``."""
    relative = PurePosixPath(key.removeprefix(DATA))
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    name = f"{relative.stem}.{stamp}.{sha256[:16]}{relative.suffix}"
    return f"{HISTORY}{relative.parent / name}"


def keep_history(storage: Storage, key: str, previous: str | None,
                 when: datetime | None = None, *, replacement: str | None = None) -> str | None:
    """Keep the object at payload ``key`` (if any) in the history; return where it went.

    It is copied there (a hard link on a local folder), so ``key`` never goes missing before
    the new bytes replace it. Nothing is kept when its SHA-256 is ``replacement``'s: the same
    bytes stay in the payload (a record renamed upstream bumps its version, not its files).
    """
    if storage.size(key) is None:
        return None
    sha = previous or sha256_of(storage, key)
    if sha == replacement:
        return None
    target = history_key(key, sha, when or datetime.now(UTC))
    if storage.size(target) is None:
        storage.copy(key, target)
    return target
