"""What a run needs to spread its downloads: the workers' settings made from the run's, the
cluster reached and checked, and the worker files of a local archive tidied."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from pathlib import Path

from ..archive.paths import STATE_DIR
from ..archive.snapshot import reconcile
from ..archive.store import Store
from ..archive.upkeep import replay_workers
from ..config.jobs import Job, Manifest
from ..config.options import RunOptions
from ..run.downloads import job_fetch
from ..run.whole import named_hosts, run_limits
from ..storage import Storage
from .connect import Cluster, open_cluster, prepare
from .wire import PROBE
from .worker import WorkerSettings

log = logging.getLogger("assetvault")


def worker_settings(manifest: Manifest, jobs: tuple[Job, ...], secret_values: tuple[str, ...],
                    user_agent: str) -> WorkerSettings:
    """The run's settings as every worker needs them (secrets included: in memory only)."""
    from .. import __version__

    whole = run_limits(jobs)
    token = secrets.token_hex(8)
    probe = ""
    if isinstance(manifest.archive, Path):
        probe = token
        (manifest.archive / STATE_DIR / PROBE).write_text(probe, encoding="utf-8")
    return WorkerSettings(
        token=token, version=__version__, archive=manifest.archive,
        store_env={k: v for k, v in os.environ.items() if k.startswith("AWS_")},
        jobs={job.name: job_fetch(job) for job in jobs}, secrets=secret_values,
        named_hosts=named_hosts(jobs), file_rate=whole.file_rate, file_burst=whole.file_burst,
        bandwidth=whole.bandwidth, concurrency={job.name: job.settings.concurrency for job in jobs},
        per_host=whole.per_host, user_agent=user_agent, probe=probe)


async def open_for_run(options: RunOptions, settings: WorkerSettings,
                       timeout: float) -> Cluster:
    """The cluster, checked and holding the run's plugin; UsageError (exit 2) otherwise."""
    cluster = await open_cluster(options, timeout)
    try:
        await prepare(cluster, settings, timeout)
    except BaseException:
        await cluster.close()
        raise
    return cluster


def settle_workers(store: Store, storage: Storage, state: Path, now: str) -> int:
    """Record what workers placed but never reported (one died between placing a file and
    saying so, or the run stopped first): a local archive's worker journals, or the metadata
    of objects in a fresh listing of an object store. Without this the bag sealed next would
    miss a file that is under ``data/``."""
    from ..storage.s3 import S3Storage

    if isinstance(storage, S3Storage):
        storage.load_listing()
        found = reconcile(store, storage, now)
    else:
        found = replay_workers(store, storage, state, now)
    if found:
        log.info("recorded %d files that workers placed but did not report", found)
    return found


def tidy_workers(state: Path, *, clean: bool) -> None:
    """Partial-file folders of workers of an earlier run (they died with it: this run holds
    the lock), and, after a clean run, the journals of this run's workers."""
    for folder in (state / "partial").glob("w-*"):
        shutil.rmtree(folder, ignore_errors=True)
    if clean:
        for journal in (state / "journals").glob("*.log"):
            journal.unlink(missing_ok=True)
    (state / PROBE).unlink(missing_ok=True)

