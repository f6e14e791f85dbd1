"""What a worker that died had already placed into a local archive, read back from its
journal: its "done" reports travel through the scheduler, and a file it finished just before
it died is complete in the archive while its report is lost with it. Sending such an item
again would fetch a whole file twice; a dead worker should cost only what it had in flight.

Only this run's journals count (their names carry the run's token): an earlier run's entry
for the same key may describe bytes this run is replacing. An entry is written before its
rename, so the bytes in place are re-hashed before they are believed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..archive.history import sha256_if_readable
from ..archive.journal import Journal, Placed
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

    async def __call__(self, items: list[Item], worker: str,
                       out: Callable[[], list[Item]]) -> list[Outcome]:
        read = self._read.get(worker)
        if read is None:
            wanted = {(i.job, i.key) for i in out()}
            read = self._read[worker] = asyncio.ensure_future(self._call(
                read_entries, self._state, self._run, worker, wanted))
        entries: Entries = await asyncio.shield(read)
        return list(await self._call(verified, self._storage, entries, items))


Found = Callable[[list[Item], str, Callable[[], list[Item]]], Awaitable[list[Outcome]]]


def salvager(cluster: Cluster, storage: Storage, state: Path,
             call: Callable[..., Awaitable[Any]]) -> Found | None:
    """How a run on ``cluster`` finds what its dead workers placed; None for an object
    store, whose objects are re-listed at the end of the run instead (reports lost there
    cost a fetch again)."""
    if cluster.plugin is None or not isinstance(storage, LocalStorage):
        return None
    return Salvage(state, cluster.plugin, storage, call)


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
            if (p.version == item.upstream_version and storage.size(DATA + p.path) == p.size
                    and sha256_if_readable(storage, DATA + p.path) == p.sha256):
                found.append(_outcome(p))
                break
    return found


def _outcome(p: Placed) -> Outcome:
    return Outcome(p.key, p.job, Status.DOWNLOADED, p.url, p.path, p.size, p.sha256,
                   upstream_version=p.version, etag=p.etag, last_modified=p.last_modified,
                   fetched_bytes=p.size)
