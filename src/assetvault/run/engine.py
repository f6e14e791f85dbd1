"""One run: sources find entries, a planner decides, workers fetch, one writer records.

::

    producers (one per job) ─► entries ─► planner ─► work ─► workers ─┐
                                             └──────────────────────► results ─► writer ─► store

Every queue is bounded, so memory stays flat however many items a job lists. The planner
looks entries up in the store a batch at a time; the writer is the only task that writes to
the store, a batch per transaction. At the end the archive is sealed as a BagIt bag.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp

from .. import __version__, errors
from ..archive.journal import Journal
from ..archive.paths import ArchivePaths
from ..archive.placer import Placer
from ..archive.store import Store
from ..archive.upkeep import (
    ArchiveLock,
    check_batch,
    check_docs,
    fresh_items,
    recover,
    replay,
    seal,
    write_docs,
)
from ..config.jobs import Job, Manifest, OnpremiseJob
from ..config.options import RunOptions, select_jobs, utc_text
from ..models import (
    Decided,
    DocRecord,
    Document,
    Entry,
    Failure,
    Item,
    JobStats,
    KnownDocument,
    ListingFailure,
    Outcome,
    PageMemo,
    Pending,
    Row,
    RunResult,
    Seen,
    Status,
)
from ..net.http import Bandwidth, GuardedResolver, Http, JobApi, Limits, origin_of
from ..net.ratelimit import lowest_rate
from ..redact import Redactor, redact_url, register
from ..sources import iter_batches
from ..sources.credentials import api_origin_url, credentials_for
from ..sources.onpremise_owners import record_patterns
from ..transfer.fetch import Fetcher
from .channel import Channel
from .downloads import Downloads
from .progress import Progress
from .report import write_report
from .threads import TrackedPool

T = TypeVar("T")
log = logging.getLogger("assetvault")

BATCH = 256
PLAN_BATCH = 1000  # entries per state lookup (one statement) and file check
PLANNERS = 1  # measured: 3 planners made a 20k re-run slower (7.6 s -> 10.5 s), GIL handoffs
USER_AGENT = f"assetvault/{__version__}"


class Run:
    """The state of one run of a manifest."""

    def __init__(self, manifest: Manifest, jobs: tuple[Job, ...], options: RunOptions,
                 progress: Progress, out: Callable[[str], None]) -> None:
        self.manifest = manifest
        self.jobs = jobs
        self.options = options
        self.progress = progress
        self.out = out
        self.paths = ArchivePaths(manifest.archive)
        self.redact = Redactor(manifest.secrets())
        register(manifest.secrets())
        self.result = RunResult(started=datetime.now(UTC))
        self.stats = {job.name: JobStats(job.name) for job in jobs}
        self.result.stats = list(self.stats.values())
        self.store: Store | None = None
        # The planner's lookups, on the event loop: a batch's reads take a few ms, and a hop
        # to the writer's thread per batch (with the GIL handed back and forth per row)
        # cost a 100k re-run more than the reads themselves.
        self.reader: Store | None = None
        self.run_id = 0
        self._db = ThreadPoolExecutor(1, thread_name_prefix="assetvault-db")
        self._io = TrackedPool(4, "assetvault-io")
        concurrency = max(job.settings.concurrency for job in jobs)
        self.workers = concurrency
        # Lists travel where whole pages do (entries; results of a planned batch): a queue
        # operation per entry was a tenth of a re-run. Each bound is in lists, each list
        # at most a page or PLAN_BATCH long, so memory stays flat.
        self.entries: Channel[list[Entry]] = Channel(4, senders=len(jobs))
        self.work: Channel[tuple[Item, str | None]] = Channel(concurrency * 2, senders=PLANNERS)
        self.results: Channel[list[Decided]] = Channel(64, senders=PLANNERS + self.workers)
        self._job_started: dict[str, float] = {}
        self.journal = Journal(self.paths.journal)
        self.placer = Placer(self.paths, self.journal)
        self._placed_committed = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._downloads: Downloads | None = None
        self._stopping = False

    # the whole run ------------------------------------------------------------------------

    async def execute(self) -> RunResult:
        """Run every job, then seal the bag and record the run (also after a failure)."""
        with self._signals():  # from the first moment to the last, a signal winds down
            return await self._execute()

    async def _execute(self) -> RunResult:
        lock = None
        try:
            if self.options.dry_run:
                self._open_store_readonly()
            else:
                self.paths.create()
                lock = ArchiveLock(self.paths.lock)
                lock.acquire()
                self.store = Store(self.paths.database)
                self.reader = Store(self.paths.database, readonly=True)
                self.run_id = await self._call(self.store.begin_run, utc_text(self.result.started))
                await self._recover()
            try:
                if not self._stopping:
                    await self._pipeline()
            except asyncio.CancelledError:
                self.result.interrupted = True
            except Exception as exc:
                # Still seal the bag and write the report: what is archived stays valid.
                log.debug("run stopped", exc_info=True)
                self.result.fatal = (errors.DISK_FULL if errors.is_disk_full(exc) else
                                     self.redact(f"internal error: {_first_error(exc)}"))
            try:
                await self._finish()
            except (OSError, sqlite3.Error) as exc:
                if not errors.is_disk_full(exc):
                    raise
                self.result.fatal = errors.DISK_FULL + " (the bag could not be sealed either)"
        finally:
            self.progress.close()
            self.journal.close()
            if self.reader is not None:
                self.reader.close()
            if self.store is not None:
                self.store.close()
            if lock is not None:
                lock.release()
            self._db.shutdown(wait=True)
            self._io.shutdown(wait=True)
        return self.result

    async def _recover(self) -> None:
        """Record what a crashed run placed but did not commit; then journal this run."""
        assert self.store is not None
        now = utc_text(datetime.now(UTC))
        count = await self._call(recover, self.store, self.paths, now)
        if count:
            log.info("recovered %d files a previous run placed but did not record", count)
        self.journal.open()

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM: stop taking new items, park those in flight, record, seal, 130."""
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous = signal.getsignal(sig)
                loop.add_signal_handler(sig, self.stop)
                installed.append((sig, previous))
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (tests, embedding): the caller handles signals
        try:
            yield
        finally:
            for sig, previous in installed:
                loop.remove_signal_handler(sig)
                # asyncio leaves the default action behind; the caller's handler goes back.
                with contextlib.suppress(TypeError, ValueError):
                    signal.signal(sig, previous)

    def stop(self) -> None:
        """Wind the run down: listings and downloads stop; what finished is recorded."""
        if self._stopping:
            return
        self._stopping = True
        self.result.interrupted = True
        for task in self._tasks:
            task.cancel()

    def _open_store_readonly(self) -> None:
        if self.paths.database.is_file():
            self.store = Store(self.paths.database, readonly=True)
            self.reader = self.store

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    async def _io_call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    async def _pipeline(self) -> None:
        limits = self._limits()
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300,
                                         resolver=GuardedResolver(self._named_hosts()))
        # 1 MiB reads: large set 1.63 s against 1.95 s with 256 KiB (medians of 3, same run).
        async with aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT},
                                         read_bufsize=1 << 20) as session:
            http = Http(session, limits)
            fetcher = Fetcher(http, self.paths, self._io, bandwidth=self._bandwidth(),
                              on_bytes=self.progress.add_bytes, placer=self.placer)
            async with asyncio.TaskGroup() as tg:
                producers = [tg.create_task(self._produce(job, http)) for job in self.jobs]
                planners = [tg.create_task(self._plan()) for _ in range(PLANNERS)]
                downloads = Downloads(self.jobs, fetcher, self.placer, self.journal, self._io_call)
                self._downloads = downloads
                workers = [tg.create_task(self._work(downloads)) for _ in range(self.workers)]
                # On a stop these are cancelled (each closes its channels on the way out); the
                # writer is not, so what finished is recorded.
                self._tasks = [*producers, *planners, *workers]
                tg.create_task(self._write())

    def _named_hosts(self) -> frozenset[str]:
        """Hosts the manifest names itself (API hosts, allow_hosts): these may resolve to a
        link-local address; any other name that does is refused."""
        hosts = {host.lower() for job in self.jobs for host in job.allow_hosts}
        hosts |= {origin_of(base)[1] for job in self.jobs
                  if (base := api_origin_url(job)) is not None}
        return frozenset(hosts)

    def _limits(self) -> Limits:
        settings = [job.settings for job in self.jobs]
        limits = Limits(lowest_rate([s.file_rate_limit for s in settings]),
                        min(s.file_burst for s in settings))
        for job in self.jobs:
            base = api_origin_url(job)
            if base is not None:
                limits.set_api(origin_of(base), job.settings.rate_limit, job.settings.burst)
        return limits

    def _bandwidth(self) -> Bandwidth:
        return Bandwidth(lowest_rate([float(job.settings.bandwidth) for job in self.jobs]))

    # producers ----------------------------------------------------------------------------

    async def _produce(self, job: Job, http: Http) -> None:
        stats = self.stats[job.name]
        self._job_started[job.name] = time.monotonic()
        api = JobApi(http, retries=job.settings.retries, timeout=job.settings.timeout,
                     min_speed=job.settings.min_speed,
                     credentials=credentials_for(job))
        try:
            since = await self._since(job)
            async for batch in iter_batches(job, api, since=since, memo=self.reader):
                if batch:
                    await self.entries.send(batch)
        except errors.CredentialsError as exc:
            stats.credentials_refused = True
            stats.fatal = self.redact(exc.message)
        except errors.JobFatalError as exc:
            stats.fatal = self.redact(exc.message)
        except Exception as exc:
            log.debug("internal error listing job %s", job.name, exc_info=True)
            stats.fatal = self.redact(f"internal error while listing: {type(exc).__name__}: {exc}")
        finally:
            self.entries.close()

    async def _since(self, job: Job) -> str | None:
        if not isinstance(job, OnpremiseJob) or job.since is None:
            return None
        if job.since != "last-run":
            return job.since
        if self.store is None:
            return None
        return await self._call(self.store.last_good_start, job.name)

    # planner ------------------------------------------------------------------------------

    async def _plan(self) -> None:
        """One of the planners: takes lists of entries, plans them PLAN_BATCH at a time."""
        try:
            while (first := await self.entries.receive()) is not None:
                batch = list(first)
                while len(batch) < PLAN_BATCH and (more := self.entries.receive_ready()):
                    batch.extend(more)
                for start in range(0, len(batch), PLAN_BATCH):
                    await self._plan_batch(batch[start:start + PLAN_BATCH])
        finally:
            self.work.close()
            self.results.close()

    def _lookup(self, items: list[Item], docs: list[Document | KnownDocument]
                ) -> tuple[dict[str, Row], dict[str, Row]]:
        """State rows of these entries, and files already fetched in this run by URL."""
        if self.reader is None or not (items or docs):
            return {}, {}
        keys = [e.key for e in items] + [d.key for d in docs]
        # Until a fetch of this run falls out of the downloads' memory, it knows them all.
        if self._downloads is not None and not self._downloads.forgotten:
            return self.reader.rows(keys), {}
        urls = sorted({redact_url(i.url) for i in items})
        return self.reader.rows(keys), self.reader.fetched_in_run(urls, self.run_id)

    async def _plan_batch(self, batch: list[Entry]) -> None:
        items = [e for e in batch if isinstance(e, Item)]
        docs = [e for e in batch if isinstance(e, Document | KnownDocument)]
        rows, fetched = self._lookup(items, docs)
        write = not self.options.dry_run
        seen: list[str] = []
        if self.options.verify_existing:  # re-hashes every file: a thread's work
            fresh, doc_records = await self._io_call(check_batch, self.placer, items, docs,
                                                     rows, write, True)
        else:
            data = f"{self.paths.data}/"
            fresh = fresh_items(data, items, rows)
            same, changed = check_docs(data, docs, rows)
            seen.extend(doc.key for doc in same)
            doc_records = (await self._io_call(write_docs, self.placer, changed, rows, write)
                           if changed else [])
        out: list[Decided] = []
        for entry in batch:
            if isinstance(entry, Item | Pending):
                self.stats[entry.job].found += 1
                self.progress.add_found()
            if isinstance(entry, ListingFailure):
                self._listing_failed(entry)
            elif isinstance(entry, Pending):
                out.append(Outcome(entry.key, entry.job, Status.PENDING, entry.url,
                                   error=entry.reason))
            elif isinstance(entry, PageMemo):
                out.append(entry)
        out.extend(doc_records)
        for item in items:
            if item.key in fresh:
                seen.append(item.key)
                self.stats[item.job].up_to_date += 1
            elif self.options.dry_run:
                self._dry(item)
            elif ((earlier := fetched.get(redact_url(item.url))) is not None and earlier.path
                  and self._downloads is not None):
                out.append(await self._downloads.link(item, _as_outcome(earlier)))
            else:
                if out:  # what is decided reaches the writer before a download can wait
                    await self.results.send(out)
                    out = []
                row = rows.get(item.key)
                await self.work.send((item, row.sha256 if row is not None else None))
        if fresh:
            self.progress.up_to_date(len(fresh))
            now = time.monotonic()
            for job in {item.job for item in items if item.key in fresh}:
                self.stats[job].seconds = now - self._job_started.get(job, now)
        if seen:
            out.append(Seen(seen))
        if out:
            await self.results.send(out)

    def _listing_failed(self, failure: ListingFailure) -> None:
        log.debug("listing failed %s %s: %s", failure.job, failure.key, self.redact(failure.error))
        self.stats[failure.job].listing_failures += 1
        self.result.failures.append(Failure(failure.job, failure.key, self.redact(failure.url),
                                            self.redact(failure.error)))

    def _dry(self, item: Item) -> None:
        self.result.planned_files += 1
        if item.expected_size is None:
            self.result.planned_unknown += 1
            size = "size unknown"
        else:
            self.result.planned_bytes += item.expected_size
            size = f"{item.expected_size} bytes"
        self.out(f"{item.job}\t{self.redact(redact_url(item.url))}\t-> data/{item.path}\t{size}")

    # workers ------------------------------------------------------------------------------

    async def _work(self, downloads: Downloads) -> None:
        try:
            while (work := await self.work.receive()) is not None:
                item, previous = work
                try:
                    outcome = await downloads.fetch(item, previous)
                except Exception as exc:
                    if isinstance(exc, errors.RunFatalError) or errors.is_disk_full(exc):
                        raise
                    # A bug met by one item must cost that item, not the run.
                    log.debug("internal error on %s", item.key, exc_info=True)
                    outcome = Outcome(item.key, item.job, Status.FAILED, redact_url(item.url),
                                      item.path,
                                      error=f"internal error: {type(exc).__name__}: {exc}")
                await self.results.send([outcome])
        finally:
            self.results.close()

    # writer -------------------------------------------------------------------------------

    async def _write(self) -> None:
        try:
            await self._write_all()
        finally:
            self.journal.clear_if(self._placed_committed, final=True)

    async def _write_all(self) -> None:
        while (first := await self.results.receive()) is not None:
            batch = list(first)
            while len(batch) < BATCH * 4 and (more := self.results.receive_ready()):
                batch.extend(more)
            outcomes = [self._count(o) for o in batch if isinstance(o, Outcome)]
            docs = [d for d in batch if isinstance(d, DocRecord)]
            pages = [(m.key, m.job, m.entries) for m in batch if isinstance(m, PageMemo)]
            seen = [key for s in batch if isinstance(s, Seen) for key in s.keys]
            for doc in docs:
                if doc.error is not None:
                    self.result.failures.append(Failure(doc.job, doc.key, "", doc.error))
            if self.store is not None and not self.options.dry_run and batch:
                now = utc_text(datetime.now(UTC))
                await self._call(self.store.record, outcomes, docs, self.run_id, now, pages,
                                 seen)
                self._placed_committed += sum(1 for d in docs if d.written and not d.error)
                self._committed(outcomes)

    def _committed(self, outcomes: list[Outcome]) -> None:
        """Outcomes are in the store now: the journal can let go of their placements."""
        self._placed_committed += sum(1 for o in outcomes if o.status is Status.DOWNLOADED)
        self.journal.clear_if(self._placed_committed)

    def _count(self, outcome: Outcome) -> Outcome:
        if outcome.error is not None:
            outcome = Outcome(outcome.key, outcome.job, outcome.status, outcome.url, outcome.path,
                              outcome.size, outcome.sha256, self.redact(outcome.error),
                              outcome.upstream_version, outcome.etag, outcome.last_modified,
                              outcome.fetched_bytes)
        stats = self.stats[outcome.job]
        stats.count(outcome)
        stats.seconds = time.monotonic() - self._job_started.get(outcome.job, time.monotonic())
        if outcome.status is Status.FAILED:
            self.result.failures.append(Failure(outcome.job, outcome.key,
                                                self.redact(outcome.url), outcome.error or ""))
        self.progress.done(outcome)
        if log.isEnabledFor(logging.DEBUG):
            detail = outcome.error or (f"{outcome.size} bytes sha256:{outcome.sha256}"
                                       if outcome.sha256 else "")
            log.debug("%s %s %s %s", outcome.status.value, outcome.job, outcome.path or outcome.key,
                      detail)
        return outcome

    # the end ------------------------------------------------------------------------------

    async def _mark_gone(self) -> None:
        """After a complete listing of a job, what it no longer lists is marked gone; after
        any listing that ran to its end, the pages it did not list are forgotten."""
        if self.result.interrupted or self.result.fatal:
            return
        assert self.store is not None
        for job in self.jobs:
            stats = self.stats[job.name]
            if stats.fatal:
                continue
            # A remembered page is only a cache: one failed record does not keep old ones.
            await self._call(self.store.forget_pages, job.name, self.run_id)
            if stats.listing_failures:
                continue
            if not isinstance(job, OnpremiseJob) or job.since is None:
                stats.gone = await self._call(self.store.mark_gone, job.name, self.run_id)
            elif job.whole:
                # `since` leaves the assets' listings partial, never the account's lists of
                # owners: what is under an owner they no longer name is gone.
                stats.gone = await self._call(self.store.mark_gone_owners, job.name,
                                              self.run_id, record_patterns(job))

    async def _finish(self) -> None:
        self.result.finished = datetime.now(UTC)
        for name, started in self._job_started.items():
            stats = self.stats[name]
            if not stats.seconds:  # nothing finished: the listing's time
                stats.seconds = time.monotonic() - started
        for stats in self.stats.values():
            if stats.fatal:
                self.result.failures.append(Failure(stats.name, stats.name, "", stats.fatal))
        if self.store is None or self.options.dry_run:
            return
        now = utc_text(datetime.now(UTC))
        if self.result.interrupted or self.result.fatal:
            # Workers stopped mid-item may have placed files whose outcomes never reached the
            # writer: once their threads are done, the journal knows every file in data/.
            await asyncio.to_thread(self._io.drain)
            await self._call(replay, self.store, self.paths, self.journal, now)
        await self._call(self.store.settle, self.run_id, now)
        await self._mark_gone()
        await self._call(seal, self.store, self.paths.root, f"assetvault {__version__}")
        stamp = self.result.started.strftime("%Y%m%dT%H%M%SZ")
        targets = [self.paths.reports / f"run-{self.run_id:05d}-{stamp}.json"]
        if self.options.report is not None:
            targets.append(self.options.report)
        self.result.report_path = targets[-1]
        text = await self._io_call(write_report, self.result, targets)
        # `since: last-run` starts from the last clean run; one that left pending files is not
        # clean, or they would never be listed again (they are "tried again on the next run").
        job_runs = [(s.name, utc_text(self.result.started), s.failed == 0 and s.pending == 0
                     and s.listing_failures == 0 and not s.fatal and not self.result.interrupted)
                    for s in self.stats.values()]
        await self._call(self.store.finish_run, self.run_id, utc_text(self.result.finished),
                         self.result.exit_code, text, job_runs)


def _as_outcome(row: Row) -> Outcome:
    return Outcome(row.key, "", Status.DOWNLOADED, row.url or "",
                   row.path or None, row.size or 0, row.sha256)


def _first_error(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


async def run_manifest(manifest: Manifest, options: RunOptions, progress: Progress,
                       out: Callable[[str], None] = print) -> RunResult:
    """Run the selected jobs of a manifest into its archive."""
    jobs = select_jobs(manifest, options.jobs)
    return await Run(manifest, jobs, options, progress, out).execute()
