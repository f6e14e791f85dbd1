"""Sources: what a job's API (or list) says exists, as a stream of entries.

Each source has two layers: an API class that makes requests and pages, and pure functions that
map one API record to its :data:`~assetvault.models.Entry` values (``asset.json``, files,
pending files, failures). Credential refusals raise ``errors.CredentialsError``; any other
trouble with one listing becomes a ``ListingFailure`` and the job goes on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..config.jobs import Job, OnpremiseJob, SpectrumJob, UrlsJob
from ..models import Entry
from ._base import Holders, JsonApi
from .memo import PageLookup
from .onpremise import OnpremiseSource
from .since import Since
from .spectrum import SpectrumSource
from .urls import UrlsSource

__all__ = ["Holders", "JsonApi", "OnpremiseSource", "Since", "SpectrumSource", "UrlsSource",
           "iter_batches", "iter_entries"]


def iter_batches(job: Job, api: JsonApi, *, since: Since | None = None,
                 memo: PageLookup | None = None, holders: Holders | None = None
                 ) -> AsyncIterator[list[Entry]]:
    """Every entry of one job, in listing order, a page (or owner, or batch of lines) at a
    time: the engine moves lists, not entries, through its queues.

    ``since`` gives each OnPremise owner's ``last_updated_at`` (the engine resolves
    ``since: last-run``, per owner), and hears which owners were listed; None lists every
    owner in full. The urls source does not use ``api``.
    ``memo`` holds remembered listing pages (Spectrum's: see ``sources.memo``); ``holders``
    says which URL keeps a name that several of one record's files share.
    """
    if isinstance(job, SpectrumJob):
        return SpectrumSource(job, api, memo, holders).batches()
    if isinstance(job, OnpremiseJob):
        return OnpremiseSource(job, api, since, holders).batches()
    if isinstance(job, UrlsJob):
        return UrlsSource(job).batches()
    raise TypeError(f"no source for {type(job).__name__}")


async def iter_entries(job: Job, api: JsonApi, *, since: Since | None = None
                       ) -> AsyncIterator[Entry]:
    """Every entry of one job, in listing order, one at a time."""
    async for batch in iter_batches(job, api, since=since):
        for entry in batch:
            yield entry
