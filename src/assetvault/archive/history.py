"""The archive never deletes: bytes that an upstream change replaces are kept here.

``.assetvault/history/{payload path}.{UTC date}.{sha256 prefix}{extension}``: outside the payload
(so the bag stays valid), named by when they were replaced and what they were.
"""

from __future__ import annotations

import hashlib
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

from .paths import ArchivePaths

READ = 1 << 20


def sha256_file(path: Path) -> str:
    """SHA-256 of a whole file, read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(READ):
            digest.update(block)
    return digest.hexdigest()


def keep_history(paths: ArchivePaths, final: Path, previous: str | None,
                 when: datetime | None = None) -> Path | None:
    """Keep the file at ``final`` (if any) in the history; return where it went.

    It is hard-linked there, so ``final`` never goes missing before the new bytes replace it;
    the caller's rename then drops the old name.
    """
    try:
        if not stat.S_ISREG(os.lstat(final).st_mode):
            return None
    except OSError:
        return None
    final = Path(final)
    sha = previous or sha256_file(final)
    stamp = (when or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    relative = final.relative_to(paths.data)
    name = f"{relative.stem}.{stamp}.{sha[:16]}{relative.suffix}"
    target = paths.history / relative.parent / name
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(final, target)
    except FileExistsError:
        pass
    except OSError:
        os.replace(final, target)
    return target
