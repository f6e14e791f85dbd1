"""The producers: one per job, its source's entries into the planner's channel."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from .. import errors
from ..archive.store import Store
from ..config.jobs import Job, OnpremiseJob, SpectrumJob
from ..models import Entry
from ..net.api import JobApi
from ..net.http import Http
from ..sources import Since, iter_batches
from ..sources.credentials import credentials_for
from ..sources.since import selection_of
from ..sources.spectrum import RATE_WINDOW
from .channel import Channel
from .tally import Tally
from .threads import Offload

log = logging.getLogger("assetvault")


class StateHolders:
    """Which URL the state keeps under a key (sources.Holders): asked only for a name that
    several files of one record share, so a re-run leaves each of them where it is."""

    def __init__(self, reader: Store, shown: Callable[[str], str]) -> None:
        self.reader = reader
        self.shown = shown  # a URL as the state stores it (redacted)

    def holder(self, key: str, urls: Sequence[str]) -> str | None:
        row = self.reader.rows([key]).get(key)
        if row is None:
            return None
        return next((url for url in urls if self.shown(url) == row.url), None)


class Lister:
    """Lists jobs: each job's API through its own retries, timeout and credentials."""

    def __init__(self, entries: Channel[list[Entry]], http: Http, *, tally: Tally,
                 reader: Store | None, store: Store | None, call: Offload) -> None:
        self.entries = entries
        self.http = http
        self.tally = tally
        self.reader = reader  # remembered pages, and who holds a shared name
        self.holders = None if reader is None else StateHolders(reader, tally.redact.url)
        self.store = store  # the last clean runs, for `since: last-run`
        self.call = call
        # Per OnPremise job with `since`: what each owner's listing sent, and who was listed.
        self.since: dict[str, Since] = {}

    async def list_job(self, job: Job) -> None:
        """Every entry of one job; a job that cannot go on is the tally's, not an exception.
        (The engine closes the channel when this ends, however it ends.)"""
        self.tally.job_started(job.name)
        s = job.settings
        api = JobApi(self.http, retries=s.retries, timeout=s.timeout, min_speed=s.min_speed,
                     credentials=credentials_for(job),
                     window=RATE_WINDOW if isinstance(job, SpectrumJob) else 0.0)
        try:
            since = await self._since(job)
            async for batch in iter_batches(job, api, since=since, memo=self.reader,
                                            holders=self.holders):
                if batch:
                    await self.entries.send(batch)
        except errors.CredentialsError as exc:
            self.tally.job_failed(job.name, exc.message, credentials=True)
        except errors.JobFatalError as exc:
            self.tally.job_failed(job.name, exc.message)
        except Exception as exc:
            log.debug("internal error listing job %s", job.name, exc_info=True)
            self.tally.job_failed(job.name,
                                  f"internal error while listing: {type(exc).__name__}: {exc}")

    async def _since(self, job: Job) -> Since | None:
        if not isinstance(job, OnpremiseJob) or job.since is None:
            return None
        if job.since != "last-run":
            since = Since(fixed=job.since)
        elif self.store is None:
            since = Since()
        else:
            since = Since(last=await self.call(self.store.owners_since, job.name,
                                               selection_of(job)))
        self.since[job.name] = since
        return since
