"""Putting verified bytes at their final key under ``data/``: the last step of every fetch.

One placement is: journal the placement, keep any old bytes in the history (unless they are
the new bytes: a version bump that changed no byte keeps no copy), then make the new bytes the
object at the key (through the archive's storage, whole or not at all); a new small body is
first offered as a new object, and only if something is there after all does that go to the
history. It runs in a worker thread. The journal comes before the write: a crash between the
two leaves a journal entry whose bytes are not there, which the next run's replay checks and
skips.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from .. import errors
from ..redact import redact_url
from ..storage import DATA, Meta, Storage, StorageError, UnsafeKeyError
from .history import keep_history
from .journal import Journal, Placed

log = logging.getLogger("assetvault")


class Placer:
    """Places finished files into the payload; thread-safe."""

    def __init__(self, storage: Storage, journal: Journal | None = None) -> None:
        self.storage = storage
        self._journal = journal

    def place_file(self, source: Path, placed: Placed, previous: str | None, url: str) -> None:
        """Make a finished partial file the payload file ``placed.path`` (``source`` is
        consumed)."""
        self._place(placed, previous, url,
                    lambda key, meta: self.storage.put_file(key, source, meta))

    def place_bytes(self, body: bytes, placed: Placed, previous: str | None, url: str) -> None:
        """Make a small verified body the payload file ``placed.path``."""
        # Nothing archived there before (``previous`` None): the body is first offered as a
        # new object, which saves asking whether something is there, a stat per file.
        new = (lambda key, meta: self.storage.put_new(key, body, meta)) if (
            previous is None and self.storage.takes_new) else None
        self._place(placed, previous, url,
                    lambda key, meta: self.storage.put_bytes(key, body, meta), new=new)

    def place_copy(self, source: str, placed: Placed) -> None:
        """Make the payload file ``source`` (relative to data/) also ``placed.path``."""
        self._place(placed, None, placed.url,
                    lambda key, meta: self.storage.copy(DATA + source, key))

    def ready(self, placed: Placed, previous: str | None) -> None:
        """Everything but the write, for bytes the store takes as they stream (their upload
        completes next): the old bytes to the history, the placement journaled."""
        self._place(placed, previous, placed.url, lambda key, meta: None)

    @staticmethod
    def meta(placed: Placed) -> Meta:
        """The provenance the store keeps beside the object."""
        return Meta(placed.sha256, placed.url, placed.version, placed.key, placed.job,
                    placed.kind)

    def _place(self, placed: Placed, previous: str | None, url: str,
               put: Callable[[str, Meta], None],
               new: Callable[[str, Meta], bool] | None = None) -> None:
        """Journal, then write: ``new`` first if given (it places only where nothing is);
        what is at the key goes to the history before ``put`` replaces it."""
        key = DATA + placed.path
        meta = self.meta(placed)
        try:
            if self._journal is not None:
                self._journal.append(placed)
            if new is not None and new(key, meta):
                return
            keep_history(self.storage, key, previous, replacement=placed.sha256)
            put(key, meta)
        except UnsafeKeyError:
            raise errors.FetchError(f"refused to write {placed.path!r}: it resolves outside "
                                    "data/", url=redact_url(url)) from None


def stamp_digest(storage: Storage, placed: Placed) -> None:
    """Give an object its full provenance when its run died between completing its upload
    (done only once every check passed) and stamping its SHA-256; a store that refuses
    costs a warning (verify --fast then reports the digest as not stored)."""
    key = DATA + placed.path
    try:
        storage.stamp(key, Placer.meta(placed), placed.size)
    except StorageError as exc:
        log.warning("%s: its SHA-256 could not be added to its metadata (%s)",
                    storage.where(key), exc)
