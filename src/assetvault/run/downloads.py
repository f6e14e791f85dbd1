"""The download side of a run: slots per job and per host, and one fetch per URL per run.

The same URL may be listed by many records (and jobs): it is fetched once and linked into
every other path. Recent fetches are remembered here; older ones the store answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable
from functools import partial

from .. import errors
from ..archive.journal import Journal, Placed
from ..archive.layout import suffix
from ..archive.placer import Placer
from ..config.jobs import Job
from ..models import Decided, Item, Outcome, Status
from ..net.origin import origin_of
from ..redact import Redactor
from ..sources.credentials import credentials_for
from ..storage import StorageError
from ..transfer.fetch import Fetcher, JobFetch
from .channel import Channel
from .slots import Slots
from .threads import Offload

log = logging.getLogger("assetvault")

# Anything planned before a fetch was committed is queued at most a few hundred items
# behind it, well inside this window.
RECENT_URLS = 20_000

# Fetches one item: the run's fetcher, or the cluster that fetches it on a worker.
Transfer = Callable[[Item, JobFetch, str | None], Awaitable[Outcome]]


class Downloads:
    """Fetches items within the run's limits, each URL once."""

    def __init__(self, jobs: tuple[Job, ...], fetcher: Fetcher, placer: Placer, journal: Journal,
                 io: Offload, redactor: Redactor, *, transfer: Transfer | None = None,
                 scale: int = 1, local_hosts: frozenset[str] = frozenset()) -> None:
        """``transfer`` replaces the fetcher for items (a cluster's); ``scale`` multiplies the
        slots per job and per host (a cluster has that many workers, each with its own), but
        not for ``local_hosts``, whose files this process fetches itself."""
        self._transfer = transfer or fetcher.fetch
        self._shown = redactor.url
        self._placer = placer
        self._journal = journal
        self._io = io
        # Built once per job, not once per item (credentials and all: ~4 us an item).
        self._fetch_of = {job.name: job_fetch(job) for job in jobs}
        self._job_slots = {job.name: Slots(job.settings.concurrency * scale)
                           for job in jobs}
        per_host = min(job.settings.per_host for job in jobs)
        # A host's slots, made on first use (local hosts: this process's own, not scaled).
        self._host_slots: defaultdict[str, Slots] = defaultdict(
            partial(Slots, per_host * scale), {host: Slots(per_host) for host in local_hosts})
        self._recent: OrderedDict[str, asyncio.Future[Outcome]] = OrderedDict()
        self.forgotten = 0  # URLs fetched in this run that only the store remembers now

    async def serve(self, work: Channel[tuple[Item, str | None]],
                    results: Channel[list[Decided]]) -> None:
        """One worker: fetches what the planner sends until it stops sending (the engine
        closes ``results`` for it when this ends, however it ends)."""
        while (got := await work.receive()) is not None:
            item, previous = got
            try:
                outcome = await self.fetch(item, previous)
            except Exception as exc:
                if isinstance(exc, errors.RunFatalError) or errors.is_disk_full(exc):
                    raise
                # A bug met by one item must cost that item, not the run.
                log.debug("internal error on %s", item.key, exc_info=True)
                outcome = Outcome(item.key, item.job, Status.FAILED, self._shown(item.url),
                                  item.path, error=_failure(exc))
            await results.send([outcome])

    async def fetch(self, item: Item, previous: str | None) -> Outcome:
        """Fetch an item, or link the file of an earlier fetch of its URL in this run."""
        first = self._recent.get(item.url)
        if first is not None:
            return await self.link(item, await first)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._recent[item.url] = future
        host = origin_of(item.url)[1]
        try:
            async with self._job_slots[item.job], self._host_slots[host]:
                outcome = await self._transfer(item, self._fetch_of[item.job], previous)
        except BaseException:
            future.cancel()
            self._recent.pop(item.url, None)
            raise
        future.set_result(outcome)
        self._forget_old()
        return outcome

    def _forget_old(self) -> None:
        while len(self._recent) > RECENT_URLS:
            url, oldest = next(iter(self._recent.items()))
            if not oldest.done():
                break
            del self._recent[url]
            self.forgotten += 1

    async def link(self, item: Item, first: Outcome) -> Outcome:
        """The same URL was fetched earlier in this run: link its file instead of fetching."""
        shown = self._shown(item.url)
        if first.status is not Status.DOWNLOADED or first.path is None or first.sha256 is None:
            return Outcome(item.key, item.job, Status.FAILED, shown, item.path,
                           error=first.error or "the same URL failed for another item")
        path = item.path
        if item.add_extension and (ext := suffix(first.path)):
            path += ext
        placed = Placed(item.key, item.job, shown, path, first.size, first.sha256,
                        item.upstream_version, first.etag, first.last_modified)
        if path != first.path:
            await self._io(self._placer.place_copy, first.path, placed)
        else:
            await self._io(self._journal.append, placed)
        return Outcome(item.key, item.job, Status.DOWNLOADED, shown, path, first.size,
                       first.sha256, upstream_version=item.upstream_version, etag=first.etag,
                       last_modified=first.last_modified)


def job_fetch(job: Job) -> JobFetch:
    """What a job's settings say about fetching its files."""
    s = job.settings
    return JobFetch(s.retries, s.timeout, s.max_file_size, credentials_for(job), job.allow_hosts,
                    s.min_speed)


def _failure(exc: Exception) -> str:
    if isinstance(exc, StorageError):  # linking a copy: the store failed, not our code
        return f"the archive's object store failed: {exc}"
    return f"internal error: {type(exc).__name__}: {exc}"
