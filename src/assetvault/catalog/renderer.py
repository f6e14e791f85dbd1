"""Previews kept by content: rendered once per SHA-256, in parallel processes.

``catalog/previews/{sha[:2]}/{sha}.png`` is a file's preview; ``{sha}.txt`` the reason it has
none. Both are keyed by the bytes' digest from the state, so a re-build renders only what is
new or changed, on any machine that reads the archive. The pool is started only when there is
something to render, in ``spawn`` processes (forking a process that holds an object-store
client's threads is unsafe). At most a few files' bytes are in flight at once.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from ..storage import Storage
from .model import FileEntry
from .previews import kind_of, render_task

PREVIEWS = "previews/"
MAX_BYTES = 64 << 20  # a file larger than this is not read for a preview
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

    def _submit(self, task: Task) -> cf.Future[tuple[str, bytes | None, str]] | None:
        sha, kind, path = task
        data = self._bytes(path)
        if isinstance(data, str):
            self._keep(sha, None, data)
            return None
        fmt = path.rpartition(".")[2].lower()
        try:
            return self._ready_pool().submit(render_task, (sha, kind, fmt, data))
        except BrokenProcessPool:  # a worker died since the last answer: a new pool
            self._drop_pool()
            return self._ready_pool().submit(render_task, (sha, kind, fmt, data))

    def _ready_pool(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = cf.ProcessPoolExecutor(self._workers, mp_context=context)
        return self._pool

    def _bytes(self, path: str) -> bytes | str:
        """The file's bytes, streamed from the archive; a reason when they cannot be had."""
        key = "data/" + path
        size = self._storage.size(key)
        if size is None:
            return "the archived file is missing"
        if size > MAX_BYTES:
            return f"too large to preview ({size >> 20} MiB)"
        try:
            return b"".join(self._storage.blocks(key))
        except OSError as exc:
            return f"the archived file cannot be read ({exc.strerror or type(exc).__name__})"

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
