"""What the selected jobs' settings say about the whole run: one value each, where several
jobs set one (the lowest rate, the smallest burst: the most careful wins)."""

from __future__ import annotations

import msgspec

from ..config.jobs import Job
from ..net.limits import Bandwidth, Limits
from ..net.origin import Origin, origin_of
from ..net.ratelimit import lowest_rate
from ..sources.credentials import api_origin_url


class RunLimits(msgspec.Struct, frozen=True):
    """File rate, burst and bandwidth for all downloads of the run together."""

    file_rate: float
    file_burst: float
    bandwidth: float
    per_host: int
    timeout: float  # the longest a job allows: how long a run waits for a cluster


def run_limits(jobs: tuple[Job, ...]) -> RunLimits:
    settings = [job.settings for job in jobs]
    return RunLimits(lowest_rate([s.file_rate_limit for s in settings]),
                     min(s.file_burst for s in settings),
                     lowest_rate([float(s.bandwidth) for s in settings]),
                     min(s.per_host for s in settings),
                     max(s.timeout for s in settings))


def api_origins(jobs: tuple[Job, ...]) -> frozenset[Origin]:
    return frozenset(origin_of(base) for job in jobs if (base := api_origin_url(job)) is not None)


def named_hosts(jobs: tuple[Job, ...]) -> frozenset[str]:
    """Hosts the manifest names itself (API hosts, allow_hosts): these may resolve to a
    link-local address; any other name that does is refused."""
    hosts = {host.lower() for job in jobs for host in job.allow_hosts}
    return frozenset(hosts | {origin[1] for origin in api_origins(jobs)})


def limits_for(jobs: tuple[Job, ...]) -> Limits:
    """One bucket per origin: an API origin gets its job's rate limit, any other the files'."""
    whole = run_limits(jobs)
    limits = Limits(whole.file_rate, whole.file_burst)
    for job in jobs:
        base = api_origin_url(job)
        if base is not None:
            limits.set_api(origin_of(base), job.settings.rate_limit, job.settings.burst)
    return limits


def bandwidth_for(jobs: tuple[Job, ...]) -> Bandwidth:
    return Bandwidth(run_limits(jobs).bandwidth)
