"""An archive in a folder of this machine (or a shared file system every worker sees).

Atomic writes are a temporary file renamed over the key: beside the target for the bag's tag
files at the root (the staging write_bag always had), and in the tool's own folder for
everything else, so no half-written name ever appears under ``data/``; a new small file is
instead written unnamed in its folder (O_TMPFILE) and named once whole. Folders are checked and
made once per run, not once per file: creating files is what costs most on this file system,
and a ``realpath`` per file would add a dozen system calls to each.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import shutil
import stat
import threading
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from .base import DATA, Meta, Stored, UnsafeKeyError

log = logging.getLogger("assetvault")

READ = 1 << 20
SCRATCH = ".assetvault/partial"
TEMP_PREFIX = "tmp-"
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_TMPFILE = getattr(os, "O_TMPFILE", 0)
# What says a system has no unnamed files to give: from the open (an older kernel, a file
# system without them), and from the link (no /proc, a link refused across it).
_NO_TMPFILE = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOSYS})
_NO_LINK = frozenset({errno.ENOENT, errno.EXDEV, errno.EPERM, errno.EACCES, errno.EOPNOTSUPP,
                      errno.ENOTDIR})
# Our temporary names, and those of earlier versions (small bodies, tag files).
_SCRATCH_TEMP = re.compile(rf"{TEMP_PREFIX}\d+-\d+|small-.*\.tmp")
_TAG_TEMP = re.compile(r"\..+\.[0-9a-f]+\.tmp")


def inside(root: Path | str, rel: str | PurePosixPath) -> Path:
    """``root/rel`` with symlinks resolved; ``ValueError`` if that is not inside ``root``."""
    base = os.path.realpath(root)
    target = os.path.realpath(os.path.join(base, *PurePosixPath(rel).parts))
    if os.path.commonpath([base, target]) != base:
        raise ValueError(f"{str(rel)!r} resolves outside {base!r}")
    return Path(target)


class LocalStorage:
    """A folder; thread-safe."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._root = str(root)
        self._scratch = os.path.join(self._root, SCRATCH)
        self._ready: set[str] = set()  # folders checked inside their area and made
        self._lock = threading.Lock()
        self._abs_root = os.path.abspath(root)
        self._unnamed = bool(_TMPFILE)  # put_new: O_TMPFILE, until the system says no
        self._counter = 0

    @property
    def location(self) -> str:
        return self._root

    @property
    def whole_up_to(self) -> int:
        # A body is written to disk either way here; past a megabyte, streaming it to the
        # partial file makes it resumable by Range and keeps memory flat.
        return 1 << 20

    def where(self, key: str) -> str:
        return os.path.join(self._root, key)

    # reading ---------------------------------------------------------------------------------

    def size(self, key: str) -> int | None:
        try:
            st = os.lstat(os.path.join(self._root, key))
        except OSError:
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def metadata(self, key: str) -> dict[str, str]:
        return {}  # a file system keeps no provenance beside a file: the state does

    def read(self, key: str) -> bytes:
        with open(os.path.join(self._root, key), "rb") as f:
            return f.read()

    def blocks(self, key: str) -> Iterator[bytes]:
        with open(os.path.join(self._root, key), "rb") as f:
            while block := f.read(READ):
                yield block

    def list(self, prefix: str) -> Iterator[Stored]:
        """Plain files only; symlinks are neither followed nor listed."""
        folder, _, start = prefix.rpartition("/")
        top = os.path.join(self._root, folder)
        for here, dirs, files in os.walk(top):
            dirs.sort()
            rel = os.path.relpath(here, self._root).replace(os.sep, "/")
            for name in sorted(files):
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix) and (size := self.size(key)) is not None:
                    yield Stored(key, size)
            if here == top and start:
                dirs[:] = [d for d in dirs if d.startswith(start) or start.startswith(d)]

    # writing ---------------------------------------------------------------------------------

    def put_file(self, key: str, source: Path, meta: Meta | None = None) -> None:
        os.replace(source, self._target(key))

    def put_bytes(self, key: str, body: bytes, meta: Meta | None = None) -> None:
        upload = self.upload(key)
        try:
            upload.write(body)
        except BaseException:
            # A write that failed (a full disk) must not leave half a body here for good:
            # the name is this process's own, so nothing would ever reuse or remove it.
            upload.abort()
            raise
        upload.commit(meta)

    @property
    def takes_new(self) -> bool:
        return self._unnamed

    def put_new(self, key: str, body: bytes, meta: Meta | None = None) -> bool:
        # An unnamed file in the target's folder, named once whole (linkat fails if the name
        # is taken, a symlink included): one name made instead of a stat, a temporary name
        # and a rename (~30 us a file less here), and a killed process leaves nothing behind.
        # The name comes before the close: a file system that reports write errors only at
        # close (some network and FUSE ones) has no unnamed files, and falls back.
        if not self._unnamed:
            return False
        target = self._target(key)
        try:
            fd = os.open(os.path.dirname(target), os.O_WRONLY | _TMPFILE | _CLOEXEC, 0o644)
        except OSError as exc:
            # Anything else (a folder gone, not writable, no inode left) is for the usual
            # path to meet and report.
            return self._none_here(exc, _NO_TMPFILE)
        try:
            _write_all(fd, body)  # its errors (a full disk) are the caller's
            return self._name(fd, os.path.join(self._abs_root, key))
        finally:
            os.close(fd)

    def _name(self, fd: int, path: str) -> bool:
        """Give the unnamed file ``fd`` the name ``path``; False if it is taken."""
        try:
            # /proc/self/fd/N as the source (followed): the unnamed file itself. A dir fd
            # makes CPython call linkat (link() would link the /proc entry: EXDEV); both
            # paths are absolute, so which fd that is does not matter.
            os.link(f"/proc/self/fd/{fd}", path, dst_dir_fd=fd, follow_symlinks=True)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
            return self._none_here(exc, _NO_LINK)
        return True

    def _none_here(self, exc: OSError, meaning: frozenset[int]) -> bool:
        """False; and no more unnamed files when ``exc`` says the system has none to give."""
        if exc.errno in meaning:
            self._unnamed = False
            log.info("%s: no unnamed files here (%s): new files are written beside and "
                     "renamed", self._root, exc.strerror)
        return False

    def stream(self, key: str, meta: Meta, size: int) -> None:
        return None  # the partial file is renamed into place: nothing to overlap

    def stamp(self, key: str, meta: Meta, size: int) -> None:
        pass  # a folder keeps no metadata

    def upload(self, key: str, *, durable: bool = False) -> LocalUpload:
        target = self._target(key)
        return LocalUpload(self._temp(key), target, durable=durable)

    def copy(self, source: str, key: str) -> None:
        """A hard link where the file system allows it (no bytes copied), else a copy; made
        under a temporary name and renamed, so ``key`` is never half there."""
        self._target(source)  # a source in a folder that resolves elsewhere is not ours to copy
        target = self._target(key)
        tmp = self._temp(key)
        try:
            try:
                os.link(os.path.join(self._root, source), tmp)
            except OSError:
                shutil.copyfile(os.path.join(self._root, source), tmp)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def retract(self, key: str) -> None:
        if "/" in key:
            raise UnsafeKeyError(f"only a tag file at the root is ever removed, not {key!r}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self._root, key))
        _fsync_dir(self._root)

    def remove(self, key: str) -> None:
        if not key.startswith(DATA):
            raise UnsafeKeyError(f"only a payload file is ever removed, not {key!r}")
        target = self._target(key)  # its folder checked inside data/: never an unlink elsewhere
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)
        _fsync_dir(os.path.dirname(target))

    def sweep(self) -> None:
        for folder, pattern in ((self._scratch, _SCRATCH_TEMP), (self._root, _TAG_TEMP)):
            with contextlib.suppress(OSError):
                for name in os.listdir(folder):
                    if pattern.fullmatch(name):
                        with contextlib.suppress(OSError):
                            os.unlink(os.path.join(folder, name))

    # where -----------------------------------------------------------------------------------

    def _target(self, key: str) -> str:
        """The path of ``key``, its folder made; UnsafeKeyError if that folder resolves outside
        the key's top folder (``data/``, ``.assetvault/``). Only folders can redirect a write:
        a rename replaces a symlink at the final name itself rather than following it."""
        parent, _, _ = key.rpartition("/")
        if parent and parent not in self._ready:
            area = parent.split("/", 1)[0]
            try:
                top, rest = os.path.join(self._root, area), PurePosixPath(parent).relative_to(area)
                inside(top, rest).mkdir(parents=True, exist_ok=True)
                inside(top, rest)  # made now: the walk is real
            except ValueError:
                raise UnsafeKeyError(f"refused to write {key!r}: its folder resolves outside "
                                     f"{area}/") from None
            with self._lock:
                self._ready.add(parent)
        return os.path.join(self._root, key)

    def _temp(self, key: str) -> str:
        if "/" not in key:  # a tag file: staged beside itself, swept by the next seal
            return os.path.join(self._root, f".{key}.{secrets.token_hex(6)}.tmp")
        with self._lock:
            self._counter += 1
            n = self._counter
            if n == 1:
                os.makedirs(self._scratch, exist_ok=True)
        return os.path.join(self._scratch, f"{TEMP_PREFIX}{os.getpid()}-{n}")


class LocalUpload:
    """A temporary file renamed over its target on commit."""

    def __init__(self, temp: str, target: str, *, durable: bool) -> None:
        self._temp = temp
        self._target = target
        self._durable = durable
        # "x": never reuse a name; default mode, so not 0600
        self._fd: int | None = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC,
                                       0o644)

    def write(self, data: bytes) -> None:
        assert self._fd is not None
        _write_all(self._fd, data)

    def commit(self, meta: Meta | None = None) -> None:
        assert self._fd is not None
        try:
            if self._durable:
                os.fsync(self._fd)  # the rename must never expose a file still in the cache
        finally:
            os.close(self._fd)
            self._fd = None
        os.replace(self._temp, self._target)
        if self._durable:
            _fsync_dir(os.path.dirname(self._target))  # fixes the order of the renames

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        with contextlib.suppress(OSError):
            os.unlink(self._temp)


def _fsync_dir(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
