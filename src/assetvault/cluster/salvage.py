"""What a worker that died had already placed into a local archive, read back from its
journal: its "done" reports travel through the scheduler, and a file it finished just before
it died is complete in the archive while its report is lost with it. Sending such an item
again would fetch a whole file twice; a dead worker should cost only what it had in flight.

Only this run's journals count (their names carry the run's token): an earlier run's entry
for the same key may describe bytes this run is replacing. An entry is written before its
rename, so the bytes in place are re-hashed before they are believed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..archive.history import sha256_if_readable
from ..archive.journal import Journal, Placed
from ..models import Item, Outcome, Status
from ..storage import DATA, LocalStorage, Storage

if TYPE_CHECKING:  # connect imports the worker module, which names journals from here
    from .connect import Cluster

Found = Callable[[list[Item]], Awaitable[list[Outcome]]]


def journal_name(run: str, worker: str) -> str:
    """The journal of one worker of one run, under the archive's ``journals/``."""
    return f"{run}-{worker}.log"


def salvager(cluster: Cluster, storage: Storage, state: Path,
             call: Callable[..., Awaitable[Any]]) -> Found | None:
    """How a run on ``cluster`` finds what its dead workers placed (``call`` runs a function
    off the event loop); None for an object store, whose objects are re-listed at the end
    of the run instead (reports lost there cost a fetch again)."""
    run = cluster.plugin
    if run is None or not isinstance(storage, LocalStorage):
        return None
    return lambda items: call(placed_by_workers, state, run, storage, items)


def placed_by_workers(state: Path, run: str, storage: Storage,
                      items: list[Item]) -> list[Outcome]:
    """Outcomes of ``items`` that a worker of ``run`` placed, whole and verified."""
    wanted = {(item.job, item.key): item for item in items}
    found: dict[tuple[str, str], Placed] = {}
    for path in sorted(state.glob("journals/" + journal_name(run, "*"))):
        for placed in Journal(path).replay():
            item = wanted.get((placed.job, placed.key))
            if item is not None and placed.version == item.upstream_version:
                found[placed.job, placed.key] = placed
    return [_outcome(p) for p in found.values()
            if storage.size(DATA + p.path) == p.size
            and sha256_if_readable(storage, DATA + p.path) == p.sha256]


def _outcome(p: Placed) -> Outcome:
    return Outcome(p.key, p.job, Status.DOWNLOADED, p.url, p.path, p.size, p.sha256,
                   upstream_version=p.version, etag=p.etag, last_modified=p.last_modified,
                   fetched_bytes=p.size)
