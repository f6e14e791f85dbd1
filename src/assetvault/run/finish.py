"""The end of a run: settle the state, retire what was replaced under another name, mark what
is gone, seal the bag, write the report."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from .. import __version__
from ..archive.journal import Journal
from ..archive.retire import retire_replaced
from ..archive.store import Store
from ..archive.upkeep import replay, seal
from ..config.jobs import Job, OnpremiseJob
from ..config.options import utc_text
from ..models import JobStats, RunResult
from ..sources.onpremise_owners import record_patterns
from ..sources.since import Since, selection_of
from ..storage import REPORTS, Storage
from .report import report_text, write_report
from .threads import Offload, TrackedPool


class Finisher:
    """What a run does once its stages are over, also after a failure or a stop: what is
    archived is recorded, sealed and reported."""

    def __init__(self, *, store: Store, storage: Storage, journal: Journal, io: TrackedPool,
                 call: Offload, io_call: Offload, run_id: int, report: Path | None,
                 snapshot: Callable[[], None] | None = None,
                 since: dict[str, Since] | None = None) -> None:
        """``snapshot`` copies the state to the archive at the end (an object store's archive
        carries its own state); ``since``: what the listings of jobs with ``since`` sent."""
        self.store = store
        self.storage = storage
        self.journal = journal
        self.io = io
        self.call = call
        self.io_call = io_call
        self.run_id = run_id
        self.report = report
        self.snapshot = snapshot
        self.since = since or {}

    async def finish(self, result: RunResult, jobs: tuple[Job, ...],
                     stats: dict[str, JobStats]) -> None:
        now = utc_text(datetime.now(UTC))
        stopped = result.interrupted or bool(result.fatal)
        if stopped:
            # Workers stopped mid-item may have placed files whose outcomes never reached the
            # writer: once their threads are done, the journal knows every file in data/.
            await asyncio.to_thread(self.io.drain)
            await self.call(replay, self.store, self.storage, self.journal, now)
        await self.call(self.store.settle, self.run_id, now)
        # Before anything is marked gone: a file its record names otherwise now is replaced,
        # not gone. Decided record by record, so a stopped run's listings count too.
        await self.call(retire_replaced, self.store, self.storage, self.run_id, now)
        if not stopped:
            await self._mark_gone(jobs, stats)
        await self.call(seal, self.store, self.storage, f"assetvault {__version__}")
        text = await self._report(result)
        # `since: last-run` starts from the last clean run; one that left pending files is not
        # clean, or they would never be listed again (they are "tried again on the next run").
        job_runs = [(s.name, utc_text(result.started), s.failed == 0 and s.pending == 0
                     and s.listing_failures == 0 and not s.fatal and not result.interrupted)
                    for s in stats.values()]
        assert result.finished is not None
        await self.call(self.store.finish_run, self.run_id, utc_text(result.finished),
                        result.exit_code, text, job_runs)
        clean = {name for name, _, ok in job_runs if ok}
        for job in jobs:
            if isinstance(job, OnpremiseJob) and job.since == "last-run" and job.name in clean:
                listed = self.since[job.name].listed if job.name in self.since else set()
                await self.call(self.store.record_owners, job.name, selection_of(job), listed,
                                utc_text(result.started))
        if self.snapshot is not None:
            await self.io_call(self.snapshot)

    async def _report(self, result: RunResult) -> str:
        stamp = result.started.strftime("%Y%m%dT%H%M%SZ")
        key = f"{REPORTS}run-{self.run_id:05d}-{stamp}.json"
        text = report_text(result)
        await self.io_call(self.storage.put_bytes, key, text.encode())
        result.report_path = self.storage.where(key)
        if self.report is not None:
            await self.io_call(write_report, text, self.report)
            result.report_path = str(self.report)
        return text

    async def _mark_gone(self, jobs: tuple[Job, ...], stats: dict[str, JobStats]) -> None:
        """After a complete listing of a job, what it no longer lists is marked gone; after
        any listing that ran to its end, the pages it did not list are forgotten."""
        for job in jobs:
            job_stats = stats[job.name]
            if job_stats.fatal:
                continue
            # A remembered page is only a cache: one failed record does not keep old ones.
            await self.call(self.store.forget_pages, job.name, self.run_id)
            if job_stats.listing_failures:
                continue
            since = self.since.get(job.name)
            if since is None or not since.partial:  # every listing was in full
                job_stats.gone = await self.call(self.store.mark_gone, job.name, self.run_id)
            elif isinstance(job, OnpremiseJob) and job.whole:
                # `since` leaves the assets' listings partial, never the account's lists of
                # owners: what is under an owner they no longer name is gone.
                job_stats.gone = await self.call(self.store.mark_gone_owners, job.name,
                                                 self.run_id, record_patterns(job))
