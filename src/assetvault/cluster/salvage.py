"""What a worker that died had already placed, read back from its journal (a local archive)
or from the objects themselves (an object store): its "done" reports travel through the
scheduler, and a file it finished just before it died is complete in the archive while its
report is lost with it. Sending such an item again would fetch a whole file twice; a dead
worker should cost only what it had in flight.

In a local archive only this run's journals count (their names carry the run's token): an
earlier run's entry for the same key may describe bytes this run is replacing. An entry is
written before its rename, so the bytes in place are re-hashed before they are believed.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..archive.journal import Journal, Placed
from ..archive.upkeep import in_place
from ..models import Item, Outcome, Status
from ..storage import DATA, LocalStorage, Storage

if TYPE_CHECKING:  # connect imports the worker module, which names journals from here
    from .connect import Cluster

Key = tuple[str, str]  # (job, key)
Entries = dict[Key, list[Placed]]


def journal_name(run: str, worker: str, unique: str) -> str:
    """The journal of one worker process of one run, under the archive's ``journals/``."""
    return f"{run}-{_tag(worker)}-{unique}.log"


def _tag(address: str) -> str:
    """A worker's address as part of a file name (and never a glob pattern)."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", address).strip("-") or "unknown"


class Salvage:
    """Finds what the dead workers of one run placed. A dead worker's journal no longer
    grows, so it is read once, when the first of its batches comes back killed (all of
    its batches are still out then), for every item out at that moment."""

    def __init__(self, state: Path, run: str, storage: Storage,
                 call: Callable[..., Awaitable[Any]]) -> None:
        self._state = state
        self._run = run
        self._storage = storage
        self._call = call  # runs a function off the event loop
        self._read: dict[str, asyncio.Future[Entries]] = {}

    async def __call__(self, lost: Lost, worker: str,
                       out: Callable[[], list[Item]]) -> list[Outcome]:
        items = [item for item, _ in lost]
        read = self._read.get(worker)
        if read is None:
            wanted = {(i.job, i.key) for i in out()}
            read = self._read[worker] = asyncio.ensure_future(self._call(
                read_entries, self._state, self._run, worker, wanted))
        entries: Entries = await asyncio.shield(read)
        return list(await self._call(verified, self._storage, entries, items))


Lost = list[tuple[Item, str | None]]  # items a dead worker never reported, and their previous
Found = Callable[[Lost, str, Callable[[], list[Item]]], Awaitable[list[Outcome]]]


class ObjectSalvage:
    """Finds what the dead workers of a run placed into an object store, where workers keep
    no journal: the object at each lost item's key, when its metadata names that item (key,
    job, upstream version, the object's own key: no copy) and its bytes, read back, hash to
    the SHA-256 it carries (an object is written whole with its digest, or stamped with it
    once whole). An item without an upstream version (a URL) is fetched again: an object
    of an earlier run could hold an older content under the same metadata."""

    def __init__(self, storage: Storage, shown: Callable[[str], str],
                 call: Callable[..., Awaitable[Any]]) -> None:
        self._storage = storage
        self._shown = shown  # the run's redacted form of a URL
        self._call = call

    async def __call__(self, lost: Lost, worker: str,
                       out: Callable[[], list[Item]]) -> list[Outcome]:
        return list(await self._call(objects_placed, self._storage, self._shown, lost))


def salvager(cluster: Cluster, storage: Storage, state: Path, shown: Callable[[str], str],
             call: Callable[..., Awaitable[Any]]) -> Found | None:
    """How a run on ``cluster`` finds what its dead workers placed (``call`` runs a function
    off the event loop: not in the run's I/O pool, whose placements the finish waits for,
    while a look-up only saves fetches)."""
    if cluster.plugin is None:
        return None
    if isinstance(storage, LocalStorage):
        return Salvage(state, cluster.plugin, storage, call)
    return ObjectSalvage(storage, shown, call)


def objects_placed(storage: Storage, shown: Callable[[str], str],
                   lost: Lost) -> list[Outcome]:
    """Outcomes of the ``lost`` items whose objects are whole and theirs (see
    ObjectSalvage)."""
    found = []
    for item, previous in lost:
        if item.upstream_version is None:
            continue
        placed = _object_of(storage, item, shown(item.url), previous)
        if placed is not None:
            found.append(_outcome(placed))
    return found


def _object_of(storage: Storage, item: Item, url: str, previous: str | None) -> Placed | None:
    from ..archive.snapshot import placed_from, placed_here  # an object store's run only

    stem = DATA + item.path
    try:
        # A name that takes its extension from the response: the objects of its folder
        # named after its stem (listed by folder: an object store lists by whole segments).
        keys = ([o.key for o in storage.list(stem.rpartition("/")[0] + "/")
                 if o.key == stem or (o.key.startswith(stem + ".")
                                      and "/" not in o.key[len(stem):])]
                if item.add_extension else [stem])
    except OSError:
        return None
    for key in keys:
        try:
            meta = storage.metadata(key)
            stored = meta.get("sha256", "")
            if not placed_here(meta, key) or not stored or stored == previous:
                continue  # not assetvault's, or the bytes this run set out to replace
            sha256, md5, size = _read_back(storage, key, want_md5=item.expected_md5 is not None)
        except OSError:  # gone since, or the store failed: the item goes again
            continue
        placed = placed_from(meta, key, size, sha256)
        # This item's, fetched from its URL of this run (a URL cut to fit its metadata
        # matches none), whole, and passing the fetch's own checks.
        if (placed is not None and sha256 == stored and md5 == item.expected_md5
                and item.expected_size in (None, size)
                and (placed.key, placed.job, placed.version, placed.url)
                == (item.key, item.job, item.upstream_version, url)):
            return placed
    return None


def _read_back(storage: Storage, key: str, *, want_md5: bool) -> tuple[str, str | None, int]:
    digest, size = hashlib.sha256(), 0
    md5 = hashlib.md5(usedforsecurity=False) if want_md5 else None
    for block in storage.blocks(key):
        digest.update(block)
        if md5 is not None:
            md5.update(block)
        size += len(block)
    return digest.hexdigest(), md5.hexdigest() if md5 is not None else None, size


def read_entries(state: Path, run: str, worker: str, wanted: set[Key]) -> Entries:
    """The ``wanted`` entries of the journals of ``worker`` in ``run`` (of every worker
    of the run when its address is unknown)."""
    pattern = journal_name(run, worker, "*") if worker else f"{run}-*.log"
    entries: Entries = {}
    for path in sorted(state.glob("journals/" + pattern)):
        for placed in Journal(path).replay():
            if (placed.job, placed.key) in wanted:
                entries.setdefault((placed.job, placed.key), []).append(placed)
    return entries


def verified(storage: Storage, entries: Entries, items: list[Item]) -> list[Outcome]:
    """Outcomes of ``items`` whose bytes in place are one of their journaled placements of
    the item's upstream version (an item placed twice, say by two workers that both died,
    has two entries: the bytes in place decide which)."""
    found = []
    for item in items:
        for p in entries.get((item.job, item.key), ()):
            if p.version == item.upstream_version and in_place(storage, p):
                found.append(_outcome(p))
                break
    return found


def _outcome(p: Placed) -> Outcome:
    return Outcome(p.key, p.job, Status.DOWNLOADED, p.url, p.path, p.size, p.sha256,
                   upstream_version=p.version, etag=p.etag, last_modified=p.last_modified,
                   fetched_bytes=p.size)
