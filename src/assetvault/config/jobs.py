"""Typed job specs: what a manifest means once it has been read and checked (see manifest.py)."""

from __future__ import annotations

from pathlib import Path

import msgspec
from msgspec import field

from ..archive.layout import safe_segment
from ..storage.location import Location

GIB = 1024**3

SPECTRUM_BASE_URL = "https://api.spectrumcustomizer.com"
ONPREMISE_BASE_URL = "https://dashboard.onpremisewine.com"

# Spectrum allows 100 requests per 60 s per endpoint and answers 403 past it: 1.5/s with a
# burst of 5 sends at most 95 in any minute, leaving room for clock skew.
SPECTRUM_RATE_LIMIT = 1.5
SPECTRUM_BURST = 5

ONPREMISE_KINDS = ("products", "beers", "restaurants", "menu_items")
# The kinds an account can list whole (api/onpremise-products.md): restaurants have no list.
LISTABLE_KINDS = ("products", "beers", "menu_items")


class Settings(msgspec.Struct, frozen=True):
    """Settings that ``defaults`` sets and any job may override (SPEC §2)."""

    concurrency: int = 16
    per_host: int = 8
    rate_limit: float = 10.0  # requests/s to the job's API origin; 0 = unlimited
    burst: int = 10
    file_rate_limit: float = 0.0  # requests/s to each file origin; 0 = unlimited
    file_burst: int = 16
    bandwidth: int = 0  # bytes/s over all downloads; 0 = unlimited
    retries: int = 5
    timeout: float = 60.0  # seconds without progress before an attempt is abandoned
    min_speed: int = 1024  # bytes/s over `timeout` seconds, below which a body is stalled
    max_file_size: int = 10 * GIB


class JobBase(msgspec.Struct, frozen=True):
    """What every job has."""

    name: str
    settings: Settings = field(default_factory=Settings)
    headers: tuple[tuple[str, str], ...] = ()  # extra headers for the API origin only
    allow_hosts: tuple[str, ...] = ()  # when set, only these hosts are fetched from

    @property
    def source(self) -> str:
        raise NotImplementedError


class SpectrumJob(JobBase, frozen=True):
    """Spectrum Customizer saved assets of some organizations of one client."""

    token: str = ""
    client: str = ""
    organizations: tuple[str, ...] = ()
    base_url: str = SPECTRUM_BASE_URL
    include: frozenset[str] = frozenset({"original", "outputs"})
    formats: frozenset[str] | None = None  # lower-case extensions without the dot; None = all
    include_inactive: bool = False
    page_size: int = 100

    @property
    def source(self) -> str:
        return "spectrum"


class OnpremiseJob(JobBase, frozen=True):
    """OnPremise assets of some products, beers, restaurants and menu items."""

    api_key: str = ""
    base_url: str = ONPREMISE_BASE_URL
    products: tuple[str, ...] = ()
    beers: tuple[str, ...] = ()
    restaurants: tuple[str, ...] = ()
    menu_items: tuple[str, ...] = ()
    include: frozenset[str] = frozenset({"original", "versions"})
    versions: frozenset[str] | None = None  # version names to keep; None = all
    include_deleted: bool = False
    since: str | None = None  # "last-run" or "YYYY-MM-DD HH:MM:SS"
    whole: frozenset[str] = frozenset()  # kinds written as "all": listed from the account
    page_size: int = 100  # per_page of /products.json

    @property
    def source(self) -> str:
        return "onpremise"

    def owners(self) -> tuple[tuple[str, str], ...]:
        """(kind, id) for every explicit id of the job, in manifest order (the owners of a
        kind in ``whole`` are only known once the account's list is read)."""
        return tuple((kind, i) for kind in ONPREMISE_KINDS for i in getattr(self, kind))


class UrlsJob(JobBase, frozen=True):
    """A plain list of URLs (text, one a line) or a CSV with columns url,path."""

    urls_file: Path = Path()

    @property
    def source(self) -> str:
        return "urls"


Job = SpectrumJob | OnpremiseJob | UrlsJob


class Manifest(msgspec.Struct, frozen=True):
    """A whole manifest: where the archive is and the jobs to run."""

    path: Path
    archive: Location  # a folder, or an object-store URL with its options
    jobs: tuple[Job, ...]

    def secrets(self) -> tuple[str, ...]:
        """Every secret value of every job, for redaction."""
        out: list[str] = []
        for job in self.jobs:
            out.extend(value for _, value in job.headers)
            if isinstance(job, SpectrumJob):
                out.append(job.token)
            elif isinstance(job, OnpremiseJob):
                out.append(job.api_key)
        return tuple(s for s in out if s)


def shared_folder(a: Job, b: Job) -> str | None:
    """A payload folder both jobs would fill from different API hosts (the layout has no
    place for the host: the same ids from a staging and a production host would overwrite
    each other), or None."""
    if type(a) is not type(b) or isinstance(a, UrlsJob) or isinstance(b, UrlsJob):
        return None
    base_a, base_b = (getattr(j, "base_url", "").rstrip("/").lower() for j in (a, b))
    if base_a == base_b:
        return None
    if isinstance(a, SpectrumJob) and isinstance(b, SpectrumJob):
        if safe_segment(a.client) != safe_segment(b.client):
            return None
        both = sorted(set(a.organizations) & set(b.organizations))
        return f"spectrum/{safe_segment(a.client)}/{both[0]}" if both else None
    assert isinstance(a, OnpremiseJob) and isinstance(b, OnpremiseJob)
    for kind in ONPREMISE_KINDS:
        mine, theirs = (set(getattr(j, kind)) for j in (a, b))
        whole = kind in a.whole or kind in b.whole
        if whole and (mine or theirs or (kind in a.whole and kind in b.whole)):
            return f"onpremise/{kind}"
        if both := sorted(mine & theirs):
            return f"onpremise/{kind}/{both[0]}"
    return None
