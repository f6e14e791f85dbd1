"""Reaching the cluster, and checking it before anything is listed: a scheduler that does not
answer, no worker, workers without assetvault or with another version of it, or a local archive
that a worker cannot see is exit 2, with a message that says which."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import msgspec
from msgspec import field

from .. import __version__, errors
from ..config.options import RunOptions
from .client import DaskClient
from .extra import EXTRA
from .worker import RunPlugin, WorkerSettings, cpu_seconds, refusal_of, set_share

if TYPE_CHECKING:
    import distributed
    from distributed import LocalCluster

log = logging.getLogger("assetvault")

CLOSE_WITHIN = 15.0  # seconds for each step of closing: a gone scheduler must not hang the end
THREADS = 4  # batches at once per local worker (async tasks: each takes a thread slot)
CONNECT_WITHIN = 20.0  # seconds to reach a scheduler (Dask retries a refused connection)


class Cluster(msgspec.Struct):
    """The client of a cluster (and the cluster, for ``--workers``)."""

    client: DaskClient
    address: str
    local: LocalCluster | None = None
    plugin: str | None = None
    workers: frozenset[str] = field(default_factory=frozenset)  # those holding a share
    gone: bool = False  # the scheduler stopped answering: nothing to tidy there
    lost: bool = False  # some outcome never came back: a worker may have placed unreported files
    cpu_start: dict[str, float] = field(default_factory=dict)  # each worker's, when it joined

    async def count_cpu(self, workers: frozenset[str]) -> None:
        """Note the CPU time of workers new to the run (what they spend from now is its)."""
        fresh = [w for w in workers if w not in self.cpu_start]
        if fresh:
            found = await self.client.run(cpu_seconds, workers=fresh)
            self.cpu_start.update({w: c for w, c in found.items() if isinstance(c, float)})

    async def cpu_used(self) -> dict[str, float]:
        """CPU seconds each worker spent on this run (those still there to ask)."""
        if self.gone or not self.cpu_start:
            return {}
        try:
            found = await asyncio.wait_for(self.client.run(cpu_seconds), CLOSE_WITHIN)
        except Exception:
            return {}
        return {w: c - self.cpu_start[w] for w, c in found.items()
                if isinstance(c, float) and w in self.cpu_start}

    async def close(self) -> None:
        """Take the run's plugin off the workers and let go of the cluster."""
        steps: list[Awaitable[object]] = []
        if self.plugin is not None and not self.gone:
            steps.append(self.client.unregister_plugin(self.plugin))
        if self.plugin is not None and not self.gone:  # a run never held lets go of nothing
            steps.append(self.client.run_on_scheduler(on_scheduler(), self.plugin, None))
        steps.append(self.client.close())
        if self.local is not None:
            steps.append(_closing(self.local))
        within = 2.0 if self.gone else CLOSE_WITHIN
        for step in steps:
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                await asyncio.wait_for(step, within)


async def open_cluster(options: RunOptions, timeout: float) -> Cluster:
    """A local cluster of ``--workers`` processes, or the client of ``--cluster``."""
    import distributed
    # Dask logs a traceback for every connection it loses (a worker killed, the cluster shut
    # down at the end): what matters reaches the user as assetvault's own lines; -v shows all.
    if not log.isEnabledFor(logging.DEBUG):
        _quiet("distributed")
    if options.workers is not None:
        return await _local(options.workers)
    address = options.cluster or ""
    within = min(timeout, CONNECT_WITHIN)
    client = distributed.Client(address, asynchronous=True,  # type: ignore[no-untyped-call]
                                timeout=within)
    try:
        await asyncio.wait_for(_connect(client), within + 5)
    except Exception as exc:  # whatever answered there (an HTTP server, say), it is no scheduler
        with contextlib.suppress(Exception):
            await asyncio.wait_for(DaskClient(client).close(), CLOSE_WITHIN)
        raise errors.UsageError(f"--cluster {address}: {_unreachable(exc)}; nothing was "
                                "listed") from None
    return Cluster(DaskClient(client), address)


async def _connect(client: distributed.Client) -> distributed.Client:
    return await cast("Awaitable[distributed.Client]", client)


def _unreachable(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        # Dask read another protocol's first bytes (an HTTP server's, say) as a frame length.
        return "something answered there, but not a Dask scheduler"
    if isinstance(exc, TypeError) and "TLS" in str(exc):
        # Dask's own words for a tls:// address without certificates are about ssl_context.
        return ("the scheduler speaks TLS and this process has no certificate: set "
                "DASK_DISTRIBUTED__COMM__TLS__CA_FILE, ..._TLS__CLIENT__CERT and "
                "..._TLS__CLIENT__KEY (see the README)")
    return f"the Dask scheduler does not answer ({_why(exc)})"


async def _closing(cluster: LocalCluster) -> None:
    await cast(Awaitable[None], cluster.close())


async def _local(count: int) -> Cluster:
    from distributed import Client, LocalCluster
    from distributed.security import Security

    # In-memory certificates: the run's secrets travel to the workers over TLS only.
    security = Security.temporary()  # type: ignore[no-untyped-call]
    # allowed-failures is set by prepare(), for this cluster as for any other.
    cluster = await cast(Awaitable[LocalCluster], LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=count, threads_per_worker=THREADS, processes=True, host="127.0.0.1",
        dashboard_address=None, security=security, asynchronous=True,
        silence_logs=logging.CRITICAL))
    client = await _connect(Client(cluster, asynchronous=True,  # type: ignore[no-untyped-call]
                                   security=security))
    return Cluster(DaskClient(client), str(cluster.scheduler_address), cluster)


async def prepare(cluster: Cluster, settings: WorkerSettings, timeout: float) -> None:
    """Every check of section 8, then the run's plugin on every worker; UsageError if any
    check fails or the cluster stops answering (the cluster is closed by the caller)."""
    try:
        await _prepare(cluster, settings, timeout)
    except (TimeoutError, OSError) as exc:
        raise errors.UsageError(f"the Dask cluster at {cluster.address} stopped answering while "
                                f"it was checked ({_why(exc)}); nothing was listed") from None


async def _prepare(cluster: Cluster, settings: WorkerSettings, timeout: float) -> None:
    where = f"the Dask cluster at {cluster.address}"
    client = cluster.client
    try:
        await client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        raise errors.UsageError(f"{where} has no worker (waited {timeout:g} s); start "
                                "`dask worker ADDRESS` on a machine with assetvault") from None
    versions = await client.run(importlib.metadata.version, "assetvault")
    wrong = {w: v for w, v in versions.items() if v != __version__}
    if wrong:
        raise errors.UsageError(f"{where}: {_versions(wrong)}; every worker needs assetvault "
                                f"{__version__} ({EXTRA}) to take part")
    cluster.plugin = settings.name
    stale = await client.run_on_scheduler(on_scheduler(), settings.name, client.client_id)
    for name in stale if isinstance(stale, list) else []:
        # The plugin of a run whose coordinator died: its secrets leave the workers now.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.unregister_plugin(str(name)), CLOSE_WITHIN)
    await client.register_plugin(RunPlugin(settings))
    refused = {w: r for w, r in (await client.run(refusal_of, settings.name)).items() if r}
    if refused:
        raise errors.UsageError(f"{where}: " + "; ".join(f"worker {w}: {r}"
                                                         for w, r in sorted(refused.items())))
    await share(cluster, frozenset(versions))


async def share(cluster: Cluster, workers: frozenset[str]) -> None:
    """Split the cluster's file rate, burst and bandwidth between ``workers``: those that had a
    larger part are lowered first, so the sum never exceeds the whole (a new worker fetches
    nothing until it is given its part)."""
    assert cluster.plugin is not None
    if not workers:
        cluster.workers = workers
        return
    fraction = 1.0 / len(workers)
    await cluster.count_cpu(workers)
    old, new = sorted(cluster.workers & workers), sorted(workers - cluster.workers)
    given: set[str] = set()
    for group in (old, new):
        if group:
            done = await cluster.client.run(set_share, cluster.plugin, fraction, workers=group)
            given |= {w for w, ok in done.items() if ok is True}
    # One not given its share yet (its plugin still being set up) is asked again next time.
    cluster.workers = frozenset(given)


def on_scheduler() -> Callable[..., list[str]]:
    """A function for the scheduler, holding or giving back a run's claim on it.

    ``client`` set: the run (its plugin's name) holds allowed-failures at 0 (a batch whose
    worker dies is not re-run by Dask: the coordinator re-sends only what did not finish).
    ``client`` None: the run lets go; the last run to let go restores the value found before
    the first took hold, kept on the scheduler: a coordinator killed mid-run never gave it
    back, and the next run must not take its 0 for the scheduler's own. Runs whose client is
    gone are dropped first; their plugins' names are returned, to be taken off the workers.

    Made here, not at module level, so that it travels by value: the scheduler's host need
    not have assetvault installed.
    """
    def hold(run: str, client: str | None, dask_scheduler: Any = None) -> list[str]:
        s = dask_scheduler
        runs: dict[str, str] = getattr(s, "assetvault_runs", None) or {}
        live = getattr(s, "clients", {})
        stale = [name for name, owner in runs.items() if owner not in live]
        for name in stale:
            del runs[name]
        if client is not None:
            if not runs and getattr(s, "assetvault_allowed_failures", None) is None:
                s.assetvault_allowed_failures = int(getattr(s, "allowed_failures", 3))
            runs[run] = client
            s.allowed_failures = 0
        else:
            runs.pop(run, None)
            original = getattr(s, "assetvault_allowed_failures", None)
            if not runs and original is not None:
                s.allowed_failures = original
                s.assetvault_allowed_failures = None
        s.assetvault_runs = runs
        return stale

    return hold


def _versions(wrong: dict[str, object]) -> str:
    parts = []
    for worker, found in sorted(wrong.items()):
        if isinstance(found, importlib.metadata.PackageNotFoundError):
            parts.append(f"worker {worker} lacks assetvault")
        elif isinstance(found, BaseException):
            parts.append(f"worker {worker} could not be asked ({_why(found)})")
        else:
            parts.append(f"worker {worker} runs assetvault {found}")
    return "; ".join(parts)


def _quiet(package: str) -> None:
    """Dask gives some of its loggers levels of their own: each is quietened, not only the top."""
    names = [n for n in logging.root.manager.loggerDict if n.startswith(package + ".")]
    for name in [package, *names]:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
