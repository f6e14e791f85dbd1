"""OnPremise assets of products, beers, restaurants and menu items: listings and assets → entries.

The API layer (:class:`OnpremiseSource`) fetches the account's lists of owners (for a kind
written ``all``), one listing per owner, and maps errors; the mappings (:func:`map_asset`,
``onpremise_owners``) are pure.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from urllib.parse import quote, urlencode

import msgspec

from .. import errors
from ..archive import layout
from ..config.jobs import ONPREMISE_KINDS, OnpremiseJob
from ..models import Entry, Item, Json, ListingFailure, Pending
from ..redact import Redactor
from ._base import Holders, JsonApi, document, ident, one_line, redactor_for, text, unique_names
from .onpremise_owners import OwnerList, list_elements, map_owner
from .paging import Paging
from .since import Since

API_HEADERS = {"X-TASTEVIN-VERSION": "1.2"}
REFUSED = frozenset({401, 403, 412})  # 412 is OnPremise's answer to a missing or bad api_key
DELETED = 1
NOT_PROCESSED = "not processed upstream yet"


class Owner(msgspec.Struct, frozen=True):
    """One listing: the assets of one product (beer, restaurant, menu item)."""

    job: OnpremiseJob
    kind: str
    owner_id: str
    redactor: Redactor
    since: str | None = None
    holders: Holders | None = None  # the state, for a name two versions share

    @property
    def url(self) -> str:
        base = self.job.base_url.rstrip("/")
        return f"{base}/{quote(self.kind, safe='')}/{quote(self.owner_id, safe='')}/assets.json"

    @property
    def params(self) -> dict[str, str]:
        params = {"api_key": self.job.api_key}
        if self.since is not None:
            params["last_updated_at"] = self.since
        return params

    @property
    def shown_url(self) -> str:
        """The listing URL as it may be shown: ``api_key=***``."""
        return self.redactor.url(f"{self.url}?{urlencode(self.params)}")

    @property
    def key(self) -> str:
        return f"onpremise/{layout.safe_segment(self.kind)}/{layout.safe_segment(self.owner_id)}"

    def failure(self, reason: str, *, key: str | None = None) -> ListingFailure:
        return ListingFailure(job=self.job.name, key=key or self.key, url=self.shown_url,
                              error=one_line(reason, self.redactor))


def job_redactor(job: OnpremiseJob) -> Redactor:
    """Scrubs the job's api_key and header values (and credential URL parameters)."""
    return redactor_for([job.api_key, *(value for _, value in job.headers)])


# --- mapping: pure ------------------------------------------------------------------------------


def listing_assets(body: Json) -> list[Json] | str:
    """The assets of a listing, or why it is unusable.

    Documented as a JSON array, shown in the sample as ``{"assets": [...]}``: both are accepted.
    """
    if isinstance(body, list):
        return body
    assets = body.get("assets") if isinstance(body, dict) else None
    if isinstance(assets, list):
        return assets
    return "listing is neither a JSON array nor an object with an assets array"


def map_asset(owner: Owner, asset: Json, position: int) -> list[Entry]:
    """The entries of one asset: its ``asset.json``, then its files (or their Pending)."""
    if not isinstance(asset, dict):
        return [owner.failure("asset is not an object", key=f"{owner.key}#{position}")]
    asset_id = ident(asset.get("id"))
    if asset_id is None:
        return [owner.failure("asset has no id", key=f"{owner.key}#{position}")]
    job = owner.job
    folder = layout.onpremise_dir(owner.kind, owner.owner_id, asset_id)
    version = text(asset.get("updated_at"))
    entries: list[Entry] = [document(job.name, folder, asset, owner.redactor, version)]
    if asset.get("status") == DELETED and not job.include_deleted:
        return entries
    problems: list[str] = []
    items = [*_original(job, folder, asset, version, problems),
             *_versions(owner, folder, asset, version, problems)]
    if asset.get("processed") in (False, 0):
        entries.extend(Pending(key=i.key, job=i.job, url=owner.redactor.url(i.url),
                               reason=NOT_PROCESSED)
                       for i in items)
    else:
        entries.extend(items)
    if problems:
        entries.append(owner.failure("; ".join(problems), key=folder))
    return entries


def _original(job: OnpremiseJob, folder: str, asset: dict[str, Json],
              version: str | None, problems: list[str]) -> list[Item]:
    if "original" not in job.include:
        return []
    url = asset.get("original_url")
    if url is None or url == "":
        # Not ready yet, it may well have none; ready without one, the file is missing
        # upstream: said (as a null version URL is), never skipped in silence.
        if asset.get("processed") not in (False, 0) and asset.get("status") != DELETED:
            problems.append("original_url is missing")
        return []
    if not isinstance(url, str):
        problems.append("original_url is not a string")
        return []
    content_type = asset.get("asset_content_type")
    ext = layout.extension_for(url, content_type if isinstance(content_type, str) else None)
    path = f"{folder}/{layout.named('original', ext)}"
    return [Item(key=path, job=job.name, url=url, path=path,
                 expected_size=_size(asset.get("asset_file_size")), upstream_version=version,
                 etag_is_md5=True, add_extension=not ext)]


def _size(value: Json) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _versions(owner: Owner, folder: str, asset: dict[str, Json],
              version: str | None, problems: list[str]) -> list[Item]:
    job = owner.job
    if "versions" not in job.include:
        return []
    wanted: list[tuple[str, str]] = []  # (name with extension, URL)
    for name, url in parse_versions(asset.get("versions"), problems):
        if job.versions is not None and name not in job.versions:
            continue
        if url is None:
            problems.append(f"version {name!r} has no url")
            continue
        wanted.append((layout.named(name, layout.extension_for(url)), url))
    names = unique_names(f"{folder}/versions", wanted, owner.holders)
    items: list[Item] = []
    for (_, url), name in zip(wanted, names, strict=True):
        path = f"{folder}/versions/{name}"
        items.append(Item(key=path, job=job.name, url=url, path=path, upstream_version=version,
                          etag_is_md5=True, add_extension=not layout.extension_for(url)))
    return items


def parse_versions(value: Json, problems: list[str]) -> list[tuple[str, str | None]]:
    """(name, url) of every version.

    The sample gives an object ``{name: {"url": ...}}``, the reference "an array of versions,
    each with an identifier and a URL": ``[{identifier|name|id|version, url}]`` and
    ``[{name: {"url": ...}}]`` (the sample's object split into members) are accepted too.
    """
    if value is None:
        return []
    if isinstance(value, dict):
        return [(str(name), _version_url(v)) for name, v in value.items()]
    if not isinstance(value, list):
        problems.append("versions is neither an object nor an array")
        return []
    out: list[tuple[str, str | None]] = []
    for member in value:
        name = _version_name(member)
        if name is not None:
            out.append((name, _version_url(member)))
        elif isinstance(member, dict) and len(member) == 1 and isinstance(
                next(iter(member.values())), dict):
            (only, inner), = member.items()
            out.append((str(only), _version_url(inner)))
        else:
            problems.append("a version has no name")
    return out


_NAME_KEYS = ("name", "identifier", "id", "version", "version_name", "type")


def _version_name(member: Json) -> str | None:
    if not isinstance(member, dict) or "url" not in member:
        return None
    for key in _NAME_KEYS:
        found = ident(member.get(key))
        if found:
            return found
    return None


def _version_url(value: Json) -> str | None:
    if isinstance(value, str):
        return value or None
    return text(value.get("url")) if isinstance(value, dict) else None


# --- the API ------------------------------------------------------------------------------------


class OnpremiseSource:
    """Fetches the listing of every owner of a job and maps its assets; for a kind listed
    whole, the account's list of owners first (see ``onpremise_owners``)."""

    def __init__(self, job: OnpremiseJob, api: JsonApi, since: Since | None = None,
                 holders: Holders | None = None) -> None:
        self.job = job
        self.api = api
        self.since = since or Since()
        self.holders = holders
        self.redactor = job_redactor(job)
        self.headers = {**API_HEADERS, **dict(job.headers)}

    async def batches(self) -> AsyncIterator[list[Entry]]:
        """Every entry of every owner, an owner at a time (explicit ids first, then those the
        account lists); a failed listing does not stop the others."""
        for kind in ONPREMISE_KINDS:
            explicit: tuple[str, ...] = getattr(self.job, kind)
            for owner_id in explicit:
                yield await self.owner(self._owner(kind, owner_id))
            if kind in self.job.whole:
                async for batch in self.account(OwnerList(self.job, kind, self.redactor),
                                                frozenset(explicit)):
                    yield batch

    def _owner(self, kind: str, owner_id: str) -> Owner:
        owner = Owner(self.job, kind, owner_id, self.redactor, holders=self.holders)
        when = self.since.of(owner.key)
        return owner if when is None else msgspec.structs.replace(owner, since=when)

    async def account(self, listing: OwnerList, explicit: frozenset[str]
                      ) -> AsyncIterator[list[Entry]]:
        """A page of the account's owners (their records), then each new owner's entries.

        Pages go strictly in order: the next is asked for only once every owner of this one is
        listed, as the API asks. A short or empty page ends the list; pages that bring no new
        id end it too, incomplete, past the guard of ``sources.paging``.
        """
        seen: set[str] = set()
        paging = Paging(self.job.page_size)
        for page in itertools.count(1):
            try:
                body = await self._get(listing.url, listing.params(page), listing.shown_url(page))
            except errors.FetchError as exc:
                yield [listing.failure(str(exc), page)]
                return
            elements = list_elements(listing.kind, body)
            if isinstance(elements, str):
                yield [listing.failure(elements, page)]
                return
            fresh, records = _page_owners(listing, elements, page, seen)
            if records:
                yield records
            for owner_id in fresh:
                if owner_id not in explicit:
                    yield await self.owner(self._owner(listing.kind, owner_id))
            if not listing.paged or not paging.after(page, len(elements), len(fresh)):
                if paging.cut_short is not None:
                    yield [listing.failure(paging.cut_short, page)]
                return

    async def owner(self, owner: Owner) -> list[Entry]:
        """The entries of one owner's listing (a ListingFailure when it failed)."""
        try:
            body = await self._get(owner.url, owner.params, owner.shown_url)
        except errors.FetchError as exc:
            return [owner.failure(str(exc))]
        assets = listing_assets(body)
        if isinstance(assets, str):
            return [owner.failure(assets)]
        self.since.listed.add(owner.key)
        entries: list[Entry] = []
        seen: set[str] = set()
        for position, asset in enumerate(assets, 1):
            asset_id = ident(asset.get("id")) if isinstance(asset, dict) else None
            if asset_id is not None and asset_id in seen:
                continue  # listed twice: once is enough
            if asset_id is not None:
                seen.add(asset_id)
            entries.extend(map_asset(owner, asset, position))
        return entries

    async def _get(self, url: str, params: dict[str, str], shown_url: str) -> Json:
        """The JSON at ``url``; a refused api_key raises CredentialsError, any other trouble
        a FetchError."""
        try:
            return await self.api.get_json(url, params=params, headers=self.headers)
        except errors.FetchError as exc:
            status = getattr(exc, "status", None)
            if status in REFUSED:
                raise errors.CredentialsError(
                    f"job {self.job.name!r}: OnPremise refused the api_key with HTTP {status}; "
                    f"check the job's api_key. The request: {shown_url}") from None
            raise


def _page_owners(listing: OwnerList, elements: list[Json], page: int, seen: set[str]
                 ) -> tuple[list[str], list[Entry]]:
    """The ids of a page not seen before (now seen), and the records and failures of its
    elements; positions count from the start of the list."""
    fresh: list[str] = []
    entries: list[Entry] = []
    for offset, element in enumerate(elements, 1):
        position = (page - 1) * listing.job.page_size + offset if listing.paged else offset
        owner_id, entry = map_owner(listing, element, page, position)
        if owner_id is not None:
            if owner_id in seen:
                continue
            seen.add(owner_id)
            fresh.append(owner_id)
        entries.append(entry)
    return fresh, entries
