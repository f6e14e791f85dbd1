"""What a run is asked to do: the options of the command line and the jobs they select."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec

from .. import errors
from .jobs import Job, Manifest


class RunOptions(msgspec.Struct, frozen=True):
    """What the command line chose for this run."""

    jobs: tuple[str, ...] = ()
    dry_run: bool = False
    report: Path | None = None
    verify_existing: bool = False
    state_dir: Path | None = None  # the local working folder of an object-store archive
    catalog: bool = False  # (re)build the catalog after the run
    workers: int | None = None  # downloads in a local cluster of this many processes
    cluster: str | None = None  # downloads on the Dask cluster of this scheduler address


def utc_text(when: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC, the form OnPremise's ``last_updated_at`` takes."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def select_jobs(manifest: Manifest, names: tuple[str, ...]) -> tuple[Job, ...]:
    """The jobs named on the command line (all when none), in manifest order."""
    if not names:
        return manifest.jobs
    known = {job.name for job in manifest.jobs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise errors.UsageError(f"{manifest.path}: no job named {', '.join(map(repr, unknown))}; "
                                f"the jobs are {', '.join(sorted(known))}")
    return tuple(job for job in manifest.jobs if job.name in names)
