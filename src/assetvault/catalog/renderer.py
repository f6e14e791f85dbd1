"""Previews kept by content: rendered once per SHA-256, in parallel processes.

``catalog/previews/{sha[:2]}/{sha}.png`` is a file's preview; ``{sha}.txt`` the reason it has
none. Both are keyed by the bytes' digest from the state, so a re-build renders only what is
new or changed, on any machine that reads the archive. The pool is started only when there is
something to render, in ``spawn`` processes (forking a process that holds an object-store
client's threads is unsafe). Workers read the file themselves: a local archive's file where it
is, an object streamed into a scratch file first, so this process never holds a file's bytes.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import tempfile
from collections.abc import Iterable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from ..storage import LocalStorage, Storage
from .model import FileEntry
from .previews import MAX_BYTES, kind_of, render_task

PREVIEWS = "previews/"
CRASHED = "the renderer crashed or took too long on this file"

Task = tuple[str, str, str]  # sha256, kind, data/ path


@dataclass
class Counts:
    rendered: int = 0  # renders run in this build (a preview or a reason)
    reused: int = 0  # files whose preview or reason an earlier build made
    placeholders: int = 0  # files shown without a preview (a reason, or not a previewable kind)


def preview_key(sha: str, ext: str) -> str:
    return f"{PREVIEWS}{sha[:2]}/{sha}.{ext}"


class Previews:
    """The previews of one catalog, made as pages need them."""

    def __init__(self, storage: Storage, root: str, workers: int | None = None) -> None:
        self._storage = storage
        self._root = root  # "catalog/"
        self._workers = max(1, workers or min(os.cpu_count() or 1, 4))
        self._pool: cf.ProcessPoolExecutor | None = None
        self._done: set[int] = set()  # a short form of each rendered digest: 1M fit in ~60 MB
        self._reasons: dict[str, str] = {}
        self._unread: set[str] = set()  # reasons an earlier build wrote, read when shown
        self._scratch: tempfile.TemporaryDirectory[str] | None = None  # objects, spooled
        self._data: str | None = None  # a local archive's data/, resolved once
        self.counts = Counts()
        for stored in storage.list(root + PREVIEWS):
            name = stored.key.rpartition("/")[2]
            sha, _, ext = name.partition(".")
            if ext == "png":
                self._done.add(_short(sha))
            elif ext == "txt":
                self._unread.add(sha)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def _drop_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def has(self, sha: str) -> bool:
        return _short(sha) in self._done

    def reason(self, entry: FileEntry) -> str:
        """Why ``entry`` has no preview (after :meth:`ensure`)."""
        if entry.sha256 is None or not entry.archived:
            return f"not archived ({entry.status})"
        if kind_of(entry.format) is None:
            return f"no preview for {entry.format.upper()} files"
        sha = entry.sha256
        if sha in self._unread:
            self._unread.discard(sha)
            try:
                self._reasons[sha] = self._storage.read(self._root + preview_key(sha, "txt")
                                                        ).decode("utf-8", "replace")[:300]
            except OSError:
                self._reasons[sha] = "no preview"
        return self._reasons.get(sha, "no preview")

    def ensure(self, files: Iterable[FileEntry]) -> None:
        """Render what these files lack; count what was there already."""
        todo: dict[str, Task] = {}
        for f in files:
            kind = kind_of(f.format)
            if not f.archived or f.sha256 is None or f.path is None or kind is None:
                self.counts.placeholders += 1
                continue
            sha = f.sha256
            if self.has(sha) or sha in self._reasons or sha in self._unread:
                self.counts.reused += sha not in todo
                self.counts.placeholders += not self.has(sha)
                continue
            todo.setdefault(sha, (sha, kind, f.path))
        if todo:
            self._render(list(todo.values()))

    def _render(self, tasks: list[Task]) -> None:
        broken = self._run(tasks, window=self._workers * 2)
        for task in broken:  # alone now: a second break names the file that breaks it
            if self._run([task], window=1):
                self._keep(task[0], None, CRASHED)

    def _run(self, tasks: list[Task], window: int) -> list[Task]:
        """Render ``tasks`` with at most ``window`` in flight; those a broken pool lost."""
        pending = iter(tasks)
        flight: dict[cf.Future[tuple[str, bytes | None, str]], Task] = {}
        lost: list[Task] = []
        while True:
            while len(flight) < window and (task := next(pending, None)) is not None:
                if (job := self._submit(task)) is not None:
                    flight[job] = task
            if not flight:
                return lost
            done, _ = cf.wait(flight, return_when=cf.FIRST_COMPLETED)
            for job in done:
                task = flight.pop(job)
                try:
                    self._keep(*job.result())
                except BrokenProcessPool:
                    lost.append(task)
                    self._drop_pool()  # a new pool for the rest
                finally:
                    self._forget(task[0])

    def _submit(self, task: Task) -> cf.Future[tuple[str, bytes | None, str]] | None:
        sha, kind, path = task
        source = self._source(sha, path)
        if source is None:
            return None
        work = (sha, kind, path.rpartition(".")[2].lower(), source)
        try:
            return self._ready_pool().submit(render_task, work)
        except BrokenProcessPool:  # a worker died since the last answer: a new pool
            self._drop_pool()
            return self._ready_pool().submit(render_task, work)

    def _ready_pool(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = cf.ProcessPoolExecutor(self._workers, mp_context=context)
        return self._pool

    def _source(self, sha: str, path: str) -> str | None:
        """A local file holding the archived file for a worker to read; None (and the reason
        kept) when there is none to read."""
        key = "data/" + path
        size = self._storage.size(key)
        reason = ("the archived file is missing" if size is None else
                  f"too large to preview ({size >> 20} MiB)" if size > MAX_BYTES else None)
        try:
            if reason is None and isinstance(self._storage, LocalStorage):
                return self._local(path)
            if reason is None:
                return self._spool(sha, key)
        except (OSError, ValueError) as exc:
            reason = f"the archived file cannot be read ({type(exc).__name__})"
        self._keep(sha, None, reason or "no preview")
        return None

    def _local(self, path: str) -> str:
        """A local archive's file where it is, resolved inside data/: never via a link out."""
        if self._data is None:
            self._data = os.path.realpath(os.path.join(self._storage.location, "data"))
        target = os.path.realpath(os.path.join(self._data, path))
        if os.path.commonpath([self._data, target]) != self._data:
            raise ValueError("outside data/")
        return target

    def _spool(self, sha: str, key: str) -> str:
        """An object's bytes streamed into a scratch file, a block at a time."""
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="assetvault-previews-")
        target = os.path.join(self._scratch.name, sha)
        with open(target, "wb") as out:
            for block in self._storage.blocks(key):
                out.write(block)
        return target

    def _forget(self, sha: str) -> None:
        if self._scratch is not None:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self._scratch.name, sha))

    def _keep(self, sha: str, png: bytes | None, reason: str) -> None:
        self.counts.rendered += 1
        if png is not None:
            self._storage.put_bytes(self._root + preview_key(sha, "png"), png)
            self._done.add(_short(sha))
        else:
            self._storage.put_bytes(self._root + preview_key(sha, "txt"), reason.encode())
            self._reasons[sha] = reason
            self.counts.placeholders += 1


def _short(sha: str) -> int:
    try:
        return int(sha[:16], 16)
    except ValueError:
        return -1
