"""What each job sends to its API origin, and only there (SPEC §5)."""

from __future__ import annotations

from ..config.jobs import Job, OnpremiseJob, SpectrumJob
from ..net.http import Credentials
from ..net.origin import origin_of

SPECTRUM_TOKEN_HEADER = "SPECTRUM_API_TOKEN"
ONPREMISE_VERSION_HEADER = "X-TASTEVIN-VERSION"
ONPREMISE_VERSION = "1.2"


def api_origin_url(job: Job) -> str | None:
    """The base URL of the job's API, or None for a job without one."""
    if isinstance(job, SpectrumJob | OnpremiseJob):
        return job.base_url
    return None


def credentials_for(job: Job) -> Credentials | None:
    """The job's credentials, bound to its API origin."""
    extra = dict(job.headers)
    if isinstance(job, SpectrumJob):
        return Credentials(origin_of(job.base_url), {**extra, SPECTRUM_TOKEN_HEADER: job.token})
    if isinstance(job, OnpremiseJob):
        return Credentials(origin_of(job.base_url),
                           {**extra, ONPREMISE_VERSION_HEADER: ONPREMISE_VERSION},
                           {"api_key": job.api_key})
    return None
