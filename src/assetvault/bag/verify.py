"""Verifying a bag where it lies: :func:`verify_bag` for a folder of this machine,
:func:`verify_storage` for any archive ``Storage`` (an object-store prefix: SPEC 7).

Both run the one check of :mod:`assetvault.bag.check` (the format, the manifests, the
matching); only reading differs. A folder keeps what a file system needs: symbolic links are
problems and never followed, nothing is read through a folder that resolves outside the bag.
A store has no links or folders: its listing gives each object's size, and reading is
IO-bound, so more workers than cores pay. :mod:`assetvault.bag.write` re-exports the public
names here.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from assetvault.bag.check import (
    BAG_INFO_TXT,
    BAGIT_TXT,
    MANIFEST,
    PAYLOAD_DIR,
    TAGMANIFEST,
    BagReader,
    Digests,
    Sizes,
    VerifyResult,
    check_bag,
    decode_path,
    is_safe_payload_path,
    parse_tags,
    split_lines,
)
from assetvault.storage.base import DATA, Storage

__all__ = [
    "BAGIT_TXT",
    "BAG_INFO_TXT",
    "MANIFEST",
    "PAYLOAD_DIR",
    "TAGMANIFEST",
    "BagReader",
    "Digests",
    "Sizes",
    "VerifyResult",
    "check_bag",
    "decode_path",
    "is_safe_payload_path",
    "parse_tags",
    "split_lines",
    "verify_bag",
    "verify_storage",
]

CHUNK = 1 << 20  # 1 MiB: large enough that hashlib releases the GIL while hashing
T = TypeVar("T")


def verify_bag(
    root: Path, *, fast: bool = False, sizes: Sizes | None = None, workers: int = 2
) -> VerifyResult:
    """Check the bag in the folder ``root`` against its manifests; see :func:`check_bag`.

    Symbolic links under ``data/`` are problems, never followed; nothing is read through a
    folder that resolves outside the bag.
    """
    return check_bag(_Folder(Path(root)), fast=fast, sizes=sizes, workers=workers)


def verify_storage(
    storage: Storage,
    *,
    fast: bool = False,
    sizes: Sizes | None = None,
    digests: Digests | None = None,
    workers: int = 8,
) -> VerifyResult:
    """Check the bag in ``storage`` against its manifests; see :func:`check_bag`.

    Full mode streams every payload object through SHA-256 in ``workers`` threads; fast mode
    reads no payload: sizes come with the listing, and ``digests(key)`` may give each
    object's stored SHA-256 (its metadata) to compare with the manifest's. An object that
    cannot be read is a problem of its own, whatever the store raised; a listing the store
    refuses with anything but an OSError (a missing bucket, refused credentials) raises.
    """
    checked = None if digests is None else _reported(digests)
    return check_bag(_Objects(storage), fast=fast, sizes=sizes, digests=checked,
                     workers=workers)


# -- an archive Storage ------------------------------------------------------------------


class _Objects:
    """A bag as the keys of a Storage."""

    def __init__(self, storage: Storage) -> None:
        self.storage, self.location = storage, storage.location

    def read(self, key: str) -> bytes:
        return _reported(self.storage.read)(key)

    def blocks(self, key: str) -> Iterator[bytes]:
        try:
            yield from self.storage.blocks(key)
        except Exception as exc:
            raise _read_error(exc) from exc

    def payload(self, result: VerifyResult) -> dict[str, int]:
        # A key ending in "/" is a folder marker some S3 tools make, never a payload file.
        present: dict[str, int] = {}
        try:
            for stored in self.storage.list(DATA):
                if not stored.key.endswith("/"):
                    present[stored.key] = stored.size
        except OSError as exc:
            result.problems.append(f"{DATA}: cannot list: {exc}")
        return present

    def tag_digest(self, name: str) -> str | None:
        return self.digest(name)

    def digest(self, key: str) -> str:
        sha = hashlib.sha256()
        for block in self.blocks(key):
            sha.update(block)
        return sha.hexdigest()

    def readable(self, key: str) -> bool:
        return True  # keys cannot lead out of the prefix: the manifest's paths are normal


def _reported(read: Callable[[str], T]) -> Callable[[str], T]:
    """``read``, with whatever the store raises made an OSError: one object's problem."""

    def reading(key: str) -> T:
        try:
            return read(key)
        except Exception as exc:
            raise _read_error(exc) from exc

    return reading


def _read_error(exc: Exception) -> OSError:
    return exc if isinstance(exc, OSError) else OSError(f"{type(exc).__name__}: {exc}")


# -- a folder of this machine ----------------------------------------------------------------


class _Folder:
    """A bag in a folder: links never followed, nothing read through a folder resolving
    elsewhere (checked once per folder per run: realpath costs more than a small hash)."""

    def __init__(self, root: Path) -> None:
        self.root, self.location = root, str(root)
        self.real_root = os.path.realpath(root)
        self.safe_dirs: set[str] = set()

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def blocks(self, key: str) -> Iterator[bytes]:
        with open(self.root / key, "rb") as f:
            while block := f.read(CHUNK):
                yield block

    def payload(self, result: VerifyResult) -> dict[str, int]:
        return _walk_payload(self.root, result)

    def tag_digest(self, name: str) -> str | None:
        return _hash_file(self.real_root, name) if _inside(self.real_root, name) else None

    def digest(self, key: str) -> str:
        return _hash_file(self.real_root, key)

    def readable(self, key: str) -> bool:
        # The walk never follows links, so this only guards against a folder swapped for a
        # link since.
        folder = posixpath.dirname(key)
        if folder not in self.safe_dirs:
            if not _inside(self.real_root, folder):
                return False
            self.safe_dirs.add(folder)
        return True


def _walk_payload(root: Path, result: VerifyResult) -> dict[str, int]:
    """Map every regular file under ``data/`` (hidden ones too) to its size.

    Uses os.scandir with an explicit stack: no recursion limit, and on Linux the file type
    comes from the directory entry, so only one lstat per file (for its size).
    """
    files: dict[str, int] = {}
    if not os.path.isdir(root / PAYLOAD_DIR) or os.path.islink(root / PAYLOAD_DIR):
        result.problems.append(f"{PAYLOAD_DIR}/ is missing or not a directory")
        return files
    base, stack = os.fspath(root), [PAYLOAD_DIR]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(os.path.join(base, folder)) as entries:
                for entry in entries:
                    _visit(entry, f"{folder}/{entry.name}", stack, files, result)
        except OSError as exc:
            result.problems.append(f"{folder}: cannot list: {exc}")
    return files


def _visit(
    entry: os.DirEntry[str], rel: str, stack: list[str], files: dict[str, int], result: VerifyResult
) -> None:
    try:
        if entry.is_symlink():
            # Never followed: a link could lead out of the bag, and the manifest vouches for
            # bytes in the bag, not for whatever the link points at today.
            result.problems.append(f"{rel}: symbolic link in the payload")
        elif entry.is_dir(follow_symlinks=False):
            stack.append(rel)
        elif entry.is_file(follow_symlinks=False):
            files[rel] = entry.stat(follow_symlinks=False).st_size
        else:
            result.problems.append(f"{rel}: not a regular file")
    except OSError as exc:
        result.problems.append(f"{rel}: {exc}")


def _inside(real_root: str, rel: str) -> bool:
    """True if ``rel`` resolves (symlinks and all) to somewhere inside the bag."""
    resolved = os.path.realpath(os.path.join(real_root, rel))
    return os.path.commonpath([real_root, resolved]) == real_root


_buffers = threading.local()


def _hash_file(real_root: str, rel: str) -> str:
    """SHA-256 of ``rel`` under the bag, read in 1 MiB chunks into a per-thread buffer."""
    buffer: bytearray | None = getattr(_buffers, "chunk", None)
    if buffer is None:  # allocating (and zeroing) 1 MiB per file would cost more than tiny files
        buffer = _buffers.chunk = bytearray(CHUNK)
    view, digest = memoryview(buffer), hashlib.sha256()
    # O_NOFOLLOW: the last component cannot be swapped for a link after the walk saw a file.
    fd = os.open(os.path.join(real_root, rel), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with open(fd, "rb", buffering=0) as f:
        while count := f.readinto(buffer):
            digest.update(view[:count])
    return digest.hexdigest()
