"""Sources: what a job's API (or list) says exists, as a stream of entries.

Each source has two layers: an API class that makes requests and pages, and pure functions that
map one API record to its :data:`~assetvault.models.Entry` values (``asset.json``, files,
pending files, failures). Credential refusals raise ``errors.CredentialsError``; any other
trouble with one listing becomes a ``ListingFailure`` and the job goes on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..jobs import Job, OnpremiseJob, SpectrumJob, UrlsJob
from ..models import Entry
from ._base import JsonApi
from .onpremise import OnpremiseSource
from .spectrum import SpectrumSource
from .urls import UrlsSource

__all__ = ["JsonApi", "OnpremiseSource", "SpectrumSource", "UrlsSource", "iter_entries"]


def iter_entries(job: Job, api: JsonApi, *, since: str | None = None) -> AsyncIterator[Entry]:
    """Every entry of one job, in listing order.

    ``since`` is the resolved ``last_updated_at`` of an OnPremise job (the engine resolves
    ``since: last-run``), or None for a full listing. The urls source does not use ``api``.
    """
    if isinstance(job, SpectrumJob):
        return SpectrumSource(job, api).entries()
    if isinstance(job, OnpremiseJob):
        return OnpremiseSource(job, api, since).entries()
    if isinstance(job, UrlsJob):
        return UrlsSource(job).entries()
    raise TypeError(f"no source for {type(job).__name__}")
