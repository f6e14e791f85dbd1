"""One run's lifecycle: open the archive, wire the stages, wind down on a signal, finish.

::

    listers (one per job) ─► entries ─► planner ─► work ─► workers ─┐
                                           └──────────────────────► results ─► writer ─► store

The stages (``listing``, ``planner``, ``downloads``, ``writer``) are joined by bounded,
closable channels, so memory stays flat however many items a job lists; the ``tally`` owns the
counts and failures they report; ``finish`` records, seals and reports whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .. import __version__, errors
from ..archive.journal import Journal
from ..archive.paths import ArchivePaths, Workspace
from ..archive.placer import Placer
from ..archive.snapshot import open_remote, reconcile, snapshot_every, take_snapshot
from ..archive.store import Store
from ..archive.upkeep import ArchiveLock, recover
from ..config.jobs import Job, Manifest
from ..config.options import RunOptions, select_jobs, utc_text
from ..models import Decided, Entry, Item, RunResult
from ..net.http import Http, Pool
from ..net.origin import GuardedResolver
from ..redact import Redactor
from ..sources.since import Since
from ..storage import LocalStorage, Storage, StorageError
from ..storage.base import SNAPSHOT
from ..storage.location import work_folder
from ..storage.open import open_object_store, store_secrets
from ..transfer.fetch import Fetcher
from .channel import Channel, close_when_done
from .downloads import Downloads
from .finish import Finisher
from .listing import Lister
from .planner import DryPlanner, PlanContext, Planner
from .progress import Progress
from .tally import Tally
from .threads import TrackedPool
from .whole import api_origins, bandwidth_for, limits_for, named_hosts, run_limits
from .writer import Writer

if TYPE_CHECKING:
    from ..cluster.connect import Cluster
    from ..cluster.dispatch import Dispatch
    from ..storage.s3 import S3Storage

T = TypeVar("T")
log = logging.getLogger("assetvault")

PLANNERS = 1  # measured: 3 planners made a 20k re-run slower (7.6 s -> 10.5 s), GIL handoffs
USER_AGENT = f"assetvault/{__version__}"


class Run:
    """The lifecycle of one run of a manifest."""

    def __init__(self, manifest: Manifest, jobs: tuple[Job, ...], options: RunOptions,
                 progress: Progress, out: Callable[[str], None]) -> None:
        self.manifest = manifest
        self.jobs = jobs
        self.options = options
        self.progress = progress
        self.out = out
        self.paths: Workspace
        self.storage: Storage
        self.remote: S3Storage | None = None  # the object store, when the archive is one
        if isinstance(manifest.archive, Path):
            self.paths = ArchivePaths(manifest.archive)
            self.storage = LocalStorage(manifest.archive)
        else:
            self.paths = Workspace(work_folder(manifest.archive, options.state_dir))
            self.storage = self.remote = open_object_store(manifest.archive, self.paths.folder)
        redact = Redactor([*manifest.secrets(), *store_secrets()])
        self.result = RunResult(started=datetime.now(UTC))
        self.tally = Tally(jobs, self.result, redact, progress)
        self.store: Store | None = None
        # The planner's lookups, on the event loop: a batch's reads take a few ms, and a hop to
        # the writer's thread per batch (GIL handed over per row) cost a 100k re-run more.
        self.reader: Store | None = None
        self.run_id = 0
        self._db = ThreadPoolExecutor(1, thread_name_prefix="assetvault-db")
        self._io = TrackedPool(4, "assetvault-io")
        self.workers = max(job.settings.concurrency for job in jobs)
        self.journal = Journal(self.paths.journal)
        self.placer = Placer(self.storage, self.journal)
        self._tasks: list[asyncio.Task[None]] = []
        self._sweeping: asyncio.Future[None] | None = None  # awaited before the run ends
        self._snapshot_lock = threading.Lock()
        self._final_snapshot = False
        self._stopping = False
        self.cluster: Cluster | None = None  # --workers / --cluster: where downloads run
        self.since: dict[str, Since] = {}  # what the listings of jobs with `since` sent

    # the whole run ------------------------------------------------------------------------

    async def execute(self) -> RunResult:
        """Run every job, then seal the bag and record the run (also after a failure)."""
        with self._signals():  # from the first moment to the last, a signal winds down
            return await self._execute()

    async def _execute(self) -> RunResult:
        lock = None
        try:
            if self.options.dry_run:
                await self._open_remote()
                self._open_store_readonly()
            else:
                lock = self._claim_folder()
                await self._open_remote()
                await self._open_cluster()
                self.store = Store(self.paths.database)
                self.reader = Store(self.paths.database, readonly=True)
                self.run_id = await self._call(self.store.begin_run, utc_text(self.result.started))
                await self._recover()
            await self._run_stages()
            try:
                await self._finish()
            except StorageError as exc:
                # The state is kept (and journaled): a re-run seals what this one could not.
                self.result.fatal = (f"the archive's object store failed at the end of the run "
                                     f"({exc}); the state is kept: run again to seal the bag")
            except (OSError, sqlite3.Error) as exc:
                if not errors.is_disk_full(exc):
                    raise
                self.result.fatal = errors.DISK_FULL + " (the bag could not be sealed either)"
        finally:
            if self._sweeping is not None:
                await asyncio.gather(self._sweeping, return_exceptions=True)
            if self.cluster is not None:
                await self._close_cluster()
            self._close(lock)
        return self.result

    async def _run_stages(self) -> None:
        snapshots = (asyncio.create_task(self._snapshots())
                     if self.remote is not None and not self.options.dry_run else None)
        try:
            if not self._stopping:
                await self._pipeline()
        except asyncio.CancelledError:
            self.result.interrupted = True
        except Exception as exc:
            # Still seal the bag and write the report: what is archived stays valid.
            log.debug("run stopped", exc_info=True)
            self.result.fatal = (errors.DISK_FULL if errors.is_disk_full(exc) else
                                 self.tally.redact(f"internal error: {errors.first_error(exc)}"))
        finally:
            if snapshots is not None:
                snapshots.cancel()

    async def _snapshots(self) -> None:
        """The state to the object store every few minutes (a timer, not a synchronisation):
        another machine picking the archive up after this one died loses at most that much."""
        assert self.remote is not None
        every = snapshot_every()
        while True:
            await asyncio.sleep(every)
            try:
                await self._io_call(self._snapshot, False)
            except OSError as exc:
                log.warning("state snapshot to %s failed: %s", self.remote.location, exc)

    def _snapshot(self, final: bool) -> None:
        """Copy the state to the store. One at a time, and none after the final one: a periodic
        copy still running in its thread when the run ends must not land over the last one."""
        assert self.remote is not None
        with self._snapshot_lock:
            if not self._final_snapshot:
                take_snapshot(self.paths.database, self.remote)
                self._final_snapshot = final

    def _close(self, lock: ArchiveLock | None) -> None:
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

    async def _recover(self) -> None:
        """Record what a crashed run placed but did not commit; then journal this run."""
        assert self.store is not None
        now = utc_text(datetime.now(UTC))
        count = await self._call(recover, self.store, self.storage, self.paths.journal, now)
        # A killed run's half-written files and uploads: ours to remove (we hold the lock).
        if self.remote is None or self.cluster is not None:
            await self._call(self.storage.sweep)  # Dask workers' uploads could not wait for it
        else:
            # Beside the downloads (0.3 s a run); the seal's sweep and our uploads wait for it.
            self.remote.sweep_beside()
            self._sweeping = asyncio.ensure_future(asyncio.to_thread(self.remote.sweep))
        if self.remote is not None:
            count += await self._call(reconcile, self.store, self.remote, now)
        if count:
            log.info("recovered %d files a previous run placed but did not record", count)
        self.journal.open()

    async def _open_remote(self) -> None:
        claim = not self.options.dry_run  # a dry run writes nothing, not even the marker
        if self.remote is not None and await self._io_call(
                partial(open_remote, claim=claim), self.remote, self.paths.database):
            log.info("state restored from %s", self.remote.where(SNAPSHOT))

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

    def abort(self, message: str) -> None:
        """Wind the run down like :meth:`stop`, for a reason that is not the user's: exit 1."""
        if self._stopping:
            return
        self.result.fatal = message
        self._stopping = True
        for task in self._tasks:
            task.cancel()

    def stop(self) -> None:
        """Wind the run down: listings and downloads stop; what finished is recorded."""
        if self._stopping:
            return
        self._stopping = True
        self.result.interrupted = True
        for task in self._tasks:
            task.cancel()

    def _claim_folder(self) -> ArchiveLock:
        """Create the run's folders and take the archive's lock; a folder that cannot be
        made (a path under /proc, no permission, a read-only disk) is the manifest's
        problem, said as such (exit 2), not an internal error."""
        try:
            self.paths.create()
            lock = ArchiveLock(self.paths.lock)
            lock.acquire()
        except OSError as exc:
            what = (f"key 'archive': the archive folder {self.manifest.archive}"
                    if isinstance(self.manifest.archive, Path)
                    else f"the state folder {self.paths.folder} (--state-dir)")
            raise errors.UsageError(
                f"{self.manifest.path}: {what} cannot be used: {exc.strerror or exc} "
                f"({exc.filename or self.paths.folder}); point it at a folder this user can "
                "create and write") from None
        return lock

    def _open_store_readonly(self) -> None:
        if self.paths.database.is_file():
            self.store = Store(self.paths.database, readonly=True)
            self.reader = self.store

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    async def _io_call(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    # the stages ---------------------------------------------------------------------------

    async def _pipeline(self) -> None:
        pool = Pool(GuardedResolver(named_hosts(self.jobs)), USER_AGENT)
        http = Http(None, limits_for(self.jobs), pool)
        fetcher = Fetcher(http, self.placer, self.paths.partial, self._io,
                          bandwidth=bandwidth_for(self.jobs),
                          on_bytes=self.progress.add_bytes,
                          redactor=self.tally.redact)
        dispatch = self._dispatch(fetcher)
        scale = 1 if dispatch is None else dispatch.low_water
        local = frozenset(o[1] for o in api_origins(self.jobs)) if dispatch else frozenset()
        downloads = Downloads(self.jobs, fetcher, self.placer, self.journal, self._io_call,
                              self.tally.redact, transfer=dispatch, scale=scale,
                              local_hosts=local)
        serving = self.workers * scale
        entries: Channel[list[Entry]] = Channel(4, senders=len(self.jobs))
        work: Channel[tuple[Item, str | None]] = Channel(serving * 2, senders=PLANNERS)
        results: Channel[list[Decided]] = Channel(64, senders=PLANNERS + serving)
        lister = Lister(entries, http, tally=self.tally, reader=self.reader, store=self.store,
                        call=self._call)
        self.since = lister.since
        planner = self._planner(entries, work, results)
        planner.downloads = downloads
        writer = Writer(results, store=None if self.options.dry_run else self.store,
                        run_id=self.run_id, journal=self.journal, tally=self.tally,
                        call=self._call)
        try:
            await self._stages(lister, planner, downloads, writer, (entries, work, results),
                               serving)
        finally:
            await http.close()
            if dispatch is not None:
                await dispatch.close()
                assert self.cluster is not None
                self.result.worker_cpu = await self.cluster.cpu_used()

    async def _stages(self, lister: Lister, planner: Planner, downloads: Downloads, writer: Writer,
                      channels: tuple[Channel[list[Entry]], Channel[tuple[Item, str | None]],
                                      Channel[list[Decided]]], serving: int) -> None:
        entries, work, results = channels
        async with asyncio.TaskGroup() as tg:
            listers = [tg.create_task(lister.list_job(job)) for job in self.jobs]
            planners = [tg.create_task(planner.run()) for _ in range(PLANNERS)]
            workers = [tg.create_task(downloads.serve(work, results)) for _ in range(serving)]
            # A stage's channels close when its task ends, however it ends: a task
            # cancelled before its first step never runs a finally of its own.
            close_when_done(listers, entries)
            close_when_done(planners, work, results)
            close_when_done(workers, results)
            # On a stop these are cancelled; the writer is not, so what finished is recorded.
            self._tasks = [*listers, *planners, *workers]
            tg.create_task(writer.run())

    # a cluster (--workers, --cluster) -----------------------------------------------------

    async def _open_cluster(self) -> None:
        """Reach and check the cluster before anything is listed (exit 2 if it is unfit)."""
        if self.options.workers is None and self.options.cluster is None:
            return
        from ..cluster.extra import require_dask

        require_dask()
        from ..cluster.coordinator import open_for_run, worker_settings

        settings = worker_settings(self.manifest, self.jobs, self.tally.redact.secrets,
                                   USER_AGENT)
        self.cluster = await open_for_run(self.options, settings, run_limits(self.jobs).timeout)
        log.info("downloading on %d Dask workers (%s)", len(self.cluster.workers),
                 self.cluster.address)

    def _dispatch(self, fetcher: Fetcher) -> Dispatch | None:
        if self.cluster is None:
            return None
        from ..cluster.dispatch import Dispatch
        from ..cluster.salvage import salvager

        dispatch = Dispatch(self.cluster, fetcher.fetch, api_origins(self.jobs),
                            timeout=run_limits(self.jobs).timeout, abort=self.abort,
                            on_bytes=self.progress.add_bytes, shown=self.tally.redact.url,
                            placed=salvager(self.cluster, self.storage, self.paths.folder,
                                            self.tally.redact.url, asyncio.to_thread))
        dispatch.start()
        return dispatch

    async def _close_cluster(self) -> None:
        assert self.cluster is not None
        await self.cluster.close()
        if isinstance(self.manifest.archive, Path):
            from ..cluster.coordinator import tidy_workers

            clean = not (self.result.fatal or self.result.interrupted)
            await self._io_call(partial(tidy_workers, self.paths.folder, clean=clean))

    def _planner(self, entries: Channel[list[Entry]], work: Channel[tuple[Item, str | None]],
                 results: Channel[list[Decided]]) -> Planner:
        context = PlanContext(self.reader, self.run_id, self.placer,
                              self._io_call, self.tally, self.options.verify_existing)
        if self.options.dry_run:
            return DryPlanner(entries, work, results, context, result=self.result, out=self.out)
        return Planner(entries, work, results, context)

    # the end ------------------------------------------------------------------------------

    async def _finish(self) -> None:
        self.result.finished = datetime.now(UTC)
        self.tally.close()
        if self.store is None or self.options.dry_run:
            return
        if self.cluster is not None and self.cluster.lost:
            from ..cluster.coordinator import settle_workers

            await self._call(settle_workers, self.store, self.storage, self.paths.folder,
                             utc_text(datetime.now(UTC)))
        finisher = Finisher(store=self.store, storage=self.storage, journal=self.journal,
                            io=self._io, call=self._call, io_call=self._io_call,
                            run_id=self.run_id, report=self.options.report,
                            snapshot=(partial(self._snapshot, True) if self.remote else None),
                            since=self.since)
        await finisher.finish(self.result, self.jobs, self.tally.stats)


async def run_manifest(manifest: Manifest, options: RunOptions, progress: Progress,
                       out: Callable[[str], None] = print) -> RunResult:
    """Run the selected jobs of a manifest into its archive."""
    jobs = select_jobs(manifest, options.jobs)
    return await Run(manifest, jobs, options, progress, out).execute()
