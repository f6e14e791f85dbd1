"""What runs on a Dask worker: one plugin per run, holding what its batches share, and the
batch task itself.

The plugin carries the run's settings and secrets. Dask pickles it in memory over the
cluster's connection to every worker, present and future: no secret is ever a task argument,
an environment variable or a command line (a task that raises is logged with its arguments,
so the batch task never raises).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import msgspec
from distributed import WorkerPlugin, get_worker
from distributed.worker import Worker
from msgspec import field

from .. import errors
from ..archive.journal import Journal
from ..archive.paths import STATE_DIR
from ..archive.placer import Placer
from ..models import Item, Outcome, Status
from ..net.http import Http, Pool
from ..net.limits import Bandwidth, Limits
from ..net.origin import GuardedResolver, origin_of
from ..redact import Redactor
from ..run.slots import Slots
from ..run.threads import TrackedPool
from ..storage import LocalStorage, Storage
from ..storage.location import Location
from ..storage.open import open_object_store
from ..transfer.fetch import Fetcher, JobFetch
from .salvage import journal_name
from .wire import PROBE, Refusal, encode_outcome

log = logging.getLogger("assetvault")

Batch = list[tuple[Item, str | None]]
QUIESCE = 8.0  # seconds a worker waits for placements still running when the run ends
READY_WITHIN = 30.0  # seconds a batch waits for its worker's share of the limits


class WorkerSettings(msgspec.Struct, frozen=True):
    """What every worker needs of the run: pickled into the plugin, in memory only."""

    token: str  # the run's: names its plugin, event topic, journals and folders
    version: str
    archive: Location
    store_env: dict[str, str]  # the coordinator's AWS_* settings (credentials among them)
    jobs: dict[str, JobFetch]  # per job name, credentials included
    secrets: tuple[str, ...]
    named_hosts: frozenset[str]
    file_rate: float  # the cluster's, split between workers by `share`
    file_burst: float
    bandwidth: float
    concurrency: dict[str, int]  # per job, per worker
    per_host: int
    user_agent: str
    probe: str = ""  # a local archive: the text of the probe file every worker must see

    @property
    def name(self) -> str:
        """The run's plugin on every worker, and the topic of its events."""
        return f"assetvault-{self.token}"


class Kit(msgspec.Struct):
    """One worker's share of a run: its client, limits, storage and fetcher."""

    settings: WorkerSettings
    http: Http  # files only: a worker makes no API call
    limits: Limits
    bandwidth: Bandwidth
    fetcher: Fetcher
    io: TrackedPool
    journal: Journal | None
    scratch: Path  # removed at the end: partial files of this worker
    redact: Redactor
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # a share was given
    batches: set[asyncio.Task[object]] = field(default_factory=set)  # running here now
    stopped: bool = False  # the run is ending: no batch runs here any more
    job_slots: dict[str, Slots] = field(default_factory=dict)
    host_slots: dict[str, Slots] = field(default_factory=dict)  # made on first use

    def share(self, fraction: float) -> None:
        """This worker's part of the cluster's file rate, burst and bandwidth."""
        s = self.settings
        # Rounded down, every worker's one-second window together never exceeds the cluster's
        # rate + burst (a burst share rounded up to one request would, with many workers).
        window = max(1, int((s.file_rate + s.file_burst) * fraction))
        self.limits.rescale_files(s.file_rate * fraction, s.file_burst * fraction, window)
        self.bandwidth.rescale(s.bandwidth * fraction)
        self.ready.set()

    async def close(self) -> None:
        await self.http.close()
        self.io.shutdown(wait=True)
        if self.journal is not None:
            self.journal.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


class RunPlugin(WorkerPlugin):
    """The run's worker plugin: builds the kit at setup; a refusal is kept, not raised, so
    the coordinator can say which worker cannot take part and why."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.kit: Kit | None = None
        self.refusal: str | None = None

    async def setup(self, worker: Worker) -> None:
        try:
            self.kit = await open_kit(self.settings, Path(worker.local_directory), worker)
        except Exception as exc:
            said = (exc.message if isinstance(exc, errors.AssetvaultError)
                    else f"{type(exc).__name__}: {exc}")
            self.refusal = Redactor(self.settings.secrets)(said)
            log.warning("assetvault worker cannot take part in run %s: %s", self.settings.token,
                        self.refusal)

    async def teardown(self, worker: Worker) -> None:
        if self.kit is not None:
            await self.kit.close()
            self.kit = None


async def open_kit(s: WorkerSettings, local: Path, worker: Worker) -> Kit:
    """The worker's client, limits and storage for the run (checks the archive is seen)."""
    storage, journal, partial, scratch = _open_archive(s, local, worker.address)
    limits = Limits(s.file_rate, s.file_burst)
    limits.on_slow_down = lambda origin, seconds: worker.log_event(
        s.name, ["slow", list(origin), seconds])
    io = TrackedPool(4, "assetvault-io")
    bandwidth = Bandwidth(s.bandwidth)
    redact = Redactor(s.secrets)
    http = Http(None, limits, Pool(GuardedResolver(s.named_hosts), s.user_agent))
    fetcher = Fetcher(http, Placer(storage, journal), partial, io, bandwidth=bandwidth,
                      redactor=redact)
    kit = Kit(s, http, limits, bandwidth, fetcher, io, journal, scratch, redact)
    kit.job_slots = {name: Slots(n) for name, n in s.concurrency.items()}
    kit.host_slots = collections.defaultdict(functools.partial(Slots, s.per_host))
    return kit


def _open_archive(s: WorkerSettings, local: Path,
                  address: str) -> tuple[Storage, Journal | None, Path, Path]:
    """The archive's storage, this worker's journal (a local archive's: the coordinator
    replays it after a crash), its folder for partial files, and the folder to remove at
    the end."""
    me = uuid.uuid4().hex[:12]
    if isinstance(s.archive, Path):
        state = s.archive / STATE_DIR
        try:
            seen = (state / PROBE).read_text(encoding="utf-8")
        except OSError:
            seen = None
        if seen != s.probe:
            raise errors.UsageError(f"this worker does not see the archive at {s.archive} "
                                    "(a local archive must be on a file system every worker "
                                    "mounts at the same path)")
        scratch = state / "partial" / f"w-{me}"
        scratch.mkdir(parents=True, exist_ok=True)
        (state / "journals").mkdir(exist_ok=True)
        journal = Journal(state / "journals" / journal_name(s.name, address, me))
        journal.open()
        return LocalStorage(s.archive), journal, scratch, scratch
    scratch = Path(tempfile.mkdtemp(prefix=f"assetvault-{me}-", dir=local))
    (scratch / "partial").mkdir()
    return open_object_store(s.archive, scratch, s.store_env), None, scratch / "partial", scratch


def plugin_of(name: str, worker: Worker | None = None) -> RunPlugin | None:
    plugin = (worker or get_worker()).plugins.get(name)
    return plugin if isinstance(plugin, RunPlugin) else None


async def fetch_batch(name: str, batch: Batch) -> list[list[object]] | Refusal:
    """Fetch a batch of items on this worker: their outcomes, each also sent as an event the
    moment it is known (a worker killed mid-batch loses only what was in flight); a Refusal
    when this worker cannot take part. Never raises (see the module's docstring)."""
    try:
        worker = get_worker()
        plugin = plugin_of(name, worker)
        if plugin is None or plugin.kit is None:
            return Refusal(worker.address, plugin.refusal if plugin is not None and
                           plugin.refusal else "the run's settings never reached this worker")
        kit = plugin.kit
        try:
            await asyncio.wait_for(kit.ready.wait(), READY_WITHIN)
        except TimeoutError:
            return Refusal(worker.address, "never given its share of the rate limits")
        return await _run_batch(kit, worker, batch)
    except Exception as exc:
        return Refusal("", f"internal error on the worker: {type(exc).__name__}")


async def _run_batch(kit: Kit, worker: Worker, batch: Batch) -> list[list[object]]:
    """The batch's outcomes; none once the run stopped it (see quiesce)."""
    task = asyncio.current_task()
    if kit.stopped or task is None:
        return []
    kit.batches.add(task)
    try:
        return list(await asyncio.gather(*(_one(kit, worker, item, previous)
                                           for item, previous in batch)))
    except asyncio.CancelledError:
        if not kit.stopped:
            raise  # not ours: the worker itself is closing
        return []  # never raise (see the module's docstring)
    finally:
        kit.batches.discard(task)


async def _one(kit: Kit, worker: Worker, item: Item, previous: str | None) -> list[object]:
    host = origin_of(item.url)[1]
    try:
        async with kit.job_slots[item.job], kit.host_slots[host]:
            outcome = await kit.fetcher.fetch(item, kit.settings.jobs[item.job], previous)
    except Exception as exc:
        # A bug met by one item must cost that item, not the batch.
        outcome = Outcome(item.key, item.job, Status.FAILED,
                          kit.redact.url(item.url), item.path,
                          error=_failure(exc, kit))
    wire = encode_outcome(outcome)
    worker.log_event(kit.settings.name, ["done", wire])
    return wire


def _failure(exc: Exception, kit: Kit) -> str:
    if errors.is_disk_full(exc):
        return errors.DISK_FULL
    return kit.redact(
        f"internal error on a worker: {type(exc).__name__}: {exc}")


def set_share(name: str, fraction: float, dask_worker: Worker) -> bool:
    """Run by the coordinator on each worker (``client.run``) when the worker set changes."""
    plugin = plugin_of(name, dask_worker)
    if plugin is None or plugin.kit is None:
        return False
    plugin.kit.share(fraction)
    return True


def hold_off(name: str, origin: list[object], seconds: float, dask_worker: Worker) -> None:
    """Run on each worker when one of them was told to wait (429, 503, Retry-After)."""
    plugin = plugin_of(name, dask_worker)
    if plugin is not None and plugin.kit is not None:
        scheme, host, port = origin
        plugin.kit.limits.hold_off((str(scheme), str(host), int(str(port))), seconds)


async def quiesce(name: str, dask_worker: Worker) -> None:
    """Stop the run's batches on this worker and wait (bounded) until no placement is running
    in its threads: the run is about to record what was placed and seal the bag. Dask's own
    cancel leaves a running coroutine running, which went on placing files the sealed bag
    did not list."""
    plugin = plugin_of(name, dask_worker)
    if plugin is None or plugin.kit is None:
        return
    kit = plugin.kit
    kit.stopped = True
    for task in kit.batches:
        task.cancel()
    if kit.batches:
        await asyncio.wait(list(kit.batches), timeout=QUIESCE)
    await asyncio.get_running_loop().run_in_executor(None, kit.io.drain, QUIESCE)


def cpu_seconds() -> float:
    """This worker process's CPU time so far (user and system, every thread)."""
    return time.process_time()


def refusal_of(name: str, dask_worker: Worker) -> str | None:
    """Run on each worker after the plugin is registered: None, or why it cannot take part."""
    plugin = plugin_of(name, dask_worker)
    if plugin is None:
        return "the run's settings never reached this worker"
    return plugin.refusal
