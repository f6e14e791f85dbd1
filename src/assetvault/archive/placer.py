"""Putting verified bytes at their final path under ``data/``: the last step of every fetch.

One placement is: check the path resolves inside ``data/``, make its folder, keep any old
bytes in the history, journal the placement, rename into place. It runs in a worker thread.
Folders are checked and made once per run, not once per file: creating files is what costs
most on this file system, and a ``realpath`` per file would add a dozen system calls to each.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path, PurePosixPath

from .. import errors
from ..redact import redact_url
from .history import keep_history
from .journal import Journal, Placed
from .layout import inside
from .paths import ArchivePaths


class Placer:
    """Renames finished files into the payload; thread-safe."""

    def __init__(self, paths: ArchivePaths, journal: Journal | None = None) -> None:
        self.paths = paths
        self._journal = journal
        self._ready: set[str] = set()  # folders checked inside data/ and made
        self._data = str(paths.data)
        self._scratch = str(paths.partial)
        self._lock = threading.Lock()
        self._counter = 0

    def target(self, relative: str, url: str = "") -> Path:
        """``data/relative``, its folder made; refused if the folder resolves outside ``data/``.

        Only folders can redirect a write: a rename replaces a symlink at the final name
        itself rather than following it.
        """
        parent = relative.rpartition("/")[0]
        if parent not in self._ready:
            try:
                folder = inside(self.paths.data, PurePosixPath(parent))
                folder.mkdir(parents=True, exist_ok=True)
                inside(self.paths.data, PurePosixPath(parent))  # made now: the walk is real
            except ValueError:
                raise errors.FetchError(f"refused to write {relative!r}: it resolves outside "
                                        "data/", url=redact_url(url)) from None
            with self._lock:
                self._ready.add(parent)
        return Path(self._data, relative)

    def place_file(self, source: Path, placed: Placed, previous: str | None, url: str) -> None:
        """Rename a finished partial file to its final path."""
        final = self.target(placed.path, url)
        keep_history(self.paths, final, previous)
        if self._journal is not None:
            self._journal.append(placed)
        os.replace(source, final)

    def place_bytes(self, body: bytes, placed: Placed, previous: str | None, url: str) -> None:
        """Write a small verified body beside the partials and rename it to its final path."""
        with self._lock:
            self._counter += 1
            tmp = self.paths.partial / f"small-{os.getpid()}-{self._counter}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0),
                     0o644)
        try:
            try:
                view = memoryview(body)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            self.place_file(tmp, placed, previous, url)
        except BaseException:
            # A write that failed (a full disk) must not leave half a body here for good:
            # the name is this process's own, so nothing would ever reuse or remove it.
            tmp.unlink(missing_ok=True)
            raise
