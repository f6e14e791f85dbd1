"""Spectrum Customizer saved assets: paging the organization listings, and records → entries.

The API layer (:class:`SpectrumSource`) pages and maps errors; the mapping (:func:`map_record`)
is pure: one content record in, its ``asset.json`` and files out.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from urllib.parse import quote, urlencode

import msgspec
from msgspec import Raw, field

from .. import errors
from ..archive import layout
from ..config.jobs import SpectrumJob
from ..models import Document, Entry, Item, Json, ListingFailure, PageMemo
from ..net.api import parse_json
from ..redact import Redactor
from . import memo
from ._base import Holders, JsonApi, document, ident, one_line, redactor_for, text, unique_names
from .memo import PageLookup
from .paging import Paging

RATE_LIMIT_STATUS = 403  # Spectrum's answer past 100 requests per 60 s (it never sends 429)
RATE_WINDOW = 66.0  # seconds the retries of a 403 span: the 60 s window, and a margin


class Listing(msgspec.Struct, frozen=True):
    """One organization's listing: where it is and what its failures are called."""

    job: SpectrumJob
    org: str
    redactor: Redactor
    holders: Holders | None = None  # the state, for a name two outputs share

    @property
    def url(self) -> str:
        base = self.job.base_url.rstrip("/")
        client, org = quote(self.job.client, safe=""), quote(self.org, safe="")
        return f"{base}/api/assets/saved/client/{client}/organization/{org}"

    @property
    def key(self) -> str:
        return f"spectrum/{layout.safe_segment(self.job.client)}/{layout.safe_segment(self.org)}"

    def failure(self, reason: str, *, key: str | None = None, url: str | None = None
                ) -> ListingFailure:
        return ListingFailure(job=self.job.name, key=key or self.key,
                              url=self.redactor.url(url or self.url),
                              error=one_line(reason, self.redactor))


def job_redactor(job: SpectrumJob) -> Redactor:
    """Scrubs the job's token and header values (and credential URL parameters)."""
    return redactor_for([job.token, *(value for _, value in job.headers)])


# --- mapping: pure ------------------------------------------------------------------------------


def map_record(listing: Listing, record: Json, position: int) -> list[Entry]:
    """The entries of one content record: its ``asset.json``, then the files it names.

    ``position`` (1-based, within the listing) names a record that has no usable id.
    """
    if not isinstance(record, dict):
        return [listing.failure("content record is not an object",
                                key=f"{listing.key}#{position}")]
    content_id = ident(record.get("id"))
    if content_id is None:
        return [listing.failure("content record has no id", key=f"{listing.key}#{position}")]
    job = listing.job
    folder = layout.spectrum_dir(job.client, listing.org, content_id)
    version = text(record.get("lastModification"))
    entries: list[Entry] = [document(job.name, folder, record, listing.redactor, version)]
    if record.get("active") is False and not job.include_inactive:
        return entries
    problems: list[str] = []
    if "original" in job.include:
        entries.extend(_original(job, folder, record, version, problems))
    if "outputs" in job.include:
        entries.extend(_outputs(listing, folder, record, version, problems))
    if problems:
        entries.append(listing.failure("; ".join(problems), key=folder))
    return entries


def _original(job: SpectrumJob, folder: str, record: dict[str, Json],
              version: str | None, problems: list[str]) -> list[Item]:
    uri = record.get("uploadedAssetUri")
    if uri is None or uri == "":
        return []
    if not isinstance(uri, str):
        problems.append("uploadedAssetUri is not a string")
        return []
    ext = layout.extension_for(uri)
    path = f"{folder}/{layout.named('original', ext)}"
    return [Item(key=path, job=job.name, url=uri, path=path, upstream_version=version,
                 add_extension=not ext)]


class _Outputs(msgspec.Struct):
    """The state of one record's outputs: URLs already taken, so each is fetched once."""

    job: SpectrumJob
    folder: str
    version: str | None
    problems: list[str]
    holders: Holders | None
    seen: set[str] = field(default_factory=set)
    items: list[Item] = field(default_factory=list)


def _outputs(listing: Listing, folder: str, record: dict[str, Json],
             version: str | None, problems: list[str]) -> list[Item]:
    production_jobs = record.get("productionJobs")
    if production_jobs is None:
        return []
    if not isinstance(production_jobs, list):
        problems.append("productionJobs is not a list")
        return []
    state = _Outputs(listing.job, folder, version, problems, listing.holders)
    for production_job in production_jobs:
        _production_job(state, production_job)
    return state.items


def _production_job(state: _Outputs, pj: Json) -> None:
    if not isinstance(pj, dict):
        state.problems.append("a production job is not an object")
        return
    job_id = ident(pj.get("id"))
    if job_id is None:
        state.problems.append("a production job has no id")
        return
    result = pj.get("result")
    if result is not None and not isinstance(result, dict):
        state.problems.append(f"production job {job_id}: result is not an object")
        result = None
    files = _job_files(pj, result or {}, job_id, state.problems)
    version = (text((result or {}).get("lastModification")) or text(pj.get("lastModification"))
               or state.version)
    folder = f"{state.folder}/jobs/{layout.spectrum_job_dir(job_id, ident(pj.get('reference')))}"
    kept: list[str] = []
    for uri, ext in files:
        if uri in state.seen:
            continue
        state.seen.add(uri)
        if state.job.formats is None or ext in state.job.formats:
            kept.append(uri)
    names = unique_names(folder, [(layout.file_name_from_url(uri), uri) for uri in kept],
                         state.holders)
    for uri, name in zip(kept, names, strict=True):
        path = f"{folder}/{name}"
        state.items.append(Item(key=path, job=state.job.name, url=uri, path=path,
                                upstream_version=version))


def _job_files(pj: dict[str, Json], result: dict[str, Json], job_id: str,
               problems: list[str]) -> list[tuple[str, str]]:
    """(URL, format) of every file of one production job: its outputs, then the
    ``specificationUri`` and ``dstUri`` that none of its outputs already names."""
    outputs = result.get("outputs")
    if outputs is None:
        outputs = []
    elif not isinstance(outputs, list):
        problems.append(f"production job {job_id}: outputs is not a list")
        outputs = []
    files: list[tuple[str, str]] = []
    for output in outputs:
        uri = output.get("uri") if isinstance(output, dict) else None
        if not isinstance(output, dict) or not isinstance(uri, str) or not uri:
            problems.append(f"production job {job_id}: an output has no uri")
            continue
        files.append((uri, _output_format(output, uri)))
    named = {uri for uri, _ in files}
    for key in ("specificationUri", "dstUri"):
        uri = pj.get(key)
        if isinstance(uri, str) and uri and uri not in named:
            named.add(uri)
            files.append((uri, _output_format({}, uri)))
    return files


def _output_format(output: dict[str, Json], uri: str) -> str:
    """Lower-case extension without the dot: ``assetFormat.extension``, else the URL's."""
    fmt = output.get("assetFormat")
    ext = text(fmt.get("extension")) if isinstance(fmt, dict) else None
    return (ext or layout.extension_for(uri)).lower().lstrip(".")


def envelope_contents(body: Json) -> list[Json] | str:
    """The ``contents`` of a listing page, or why the page is unusable."""
    if not isinstance(body, dict):
        return f"listing is not a JSON object but {type(body).__name__}"
    error = body.get("error")
    if error is not None:
        shown = error if isinstance(error, str) else json.dumps(error, ensure_ascii=False)
        return f"Spectrum reported an error: {shown}"
    contents = body.get("contents")
    if not isinstance(contents, list):
        return "listing has no contents list"
    return contents


def _memo_of(key: str, identities: list[str], batch: list[Entry],
             redactor: Redactor) -> list[Entry]:
    """The PageMemo of a page just mapped, if it may be remembered (else nothing)."""
    record_of: dict[str, int] = {}
    index = -1
    for entry in batch:
        if isinstance(entry, Document):  # each record's entries start with its asset.json
            index += 1
            record_of[entry.key] = index
    if index + 1 != len(identities):
        return []
    entries = memo.remember(identities, batch, record_of, redactor)
    return [] if entries is None else [PageMemo(key, batch[0].job, entries)]


def record_identity(record: Json) -> str:
    """What tells records apart across pages: the id, else the whole record."""
    if isinstance(record, dict) and (content_id := ident(record.get("id"))) is not None:
        return content_id
    return json.dumps(record, sort_keys=True, default=str)


# --- the API: paging ----------------------------------------------------------------------------


class SpectrumSource:
    """Pages every organization of a job and maps its records."""

    def __init__(self, job: SpectrumJob, api: JsonApi, memo: PageLookup | None = None,
                 holders: Holders | None = None) -> None:
        self.job = job
        self.api = api
        self.redactor = job_redactor(job)
        self.memo = memo
        self.holders = holders

    def headers(self) -> dict[str, str]:
        return {"SPECTRUM_API_TOKEN": self.job.token, **dict(self.job.headers)}

    async def batches(self) -> AsyncIterator[list[Entry]]:
        """Every entry of every organization, a page at a time; a failed organization does
        not stop the others."""
        for org in self.job.organizations:
            async for batch in self.organization(org):
                yield batch

    async def organization(self, org: str) -> AsyncIterator[list[Entry]]:
        """One organization's entries, a page at a time, until a short or empty page (or the
        guard of ``sources.paging``: then a ListingFailure last)."""
        listing = Listing(self.job, org, self.redactor, self.holders)
        job = self.job
        settings = memo.fingerprint(job.name, job.client, org, sorted(job.include),
                                    None if job.formats is None else sorted(job.formats),
                                    job.include_inactive, secrets=self.redactor.secrets)
        seen: set[str] = set()
        paging = Paging(job.page_size)
        ahead: asyncio.Task[tuple[bytes | bytearray, str] | ListingFailure] | None = (
            asyncio.create_task(self._page(listing, 1)))
        try:
            for page in itertools.count(1):
                assert ahead is not None
                got = await ahead
                ahead = None
                if isinstance(got, ListingFailure):
                    yield [got]
                    return
                mapped = self._map_page(listing, page, *got, settings, seen)
                del got  # the page's bytes: not held while its entries are planned
                if isinstance(mapped, ListingFailure):
                    yield [mapped]
                    return
                count, fresh, batch = mapped
                if paging.after(page, count, fresh):
                    # Ask for the next page while this one is mapped and planned: the
                    # server's latency overlaps our work (the rate limit still applies).
                    ahead = asyncio.create_task(self._page(listing, page + 1))
                if batch:
                    yield batch
                if ahead is None:
                    if paging.cut_short is not None:
                        yield [listing.failure(paging.cut_short,
                                               url=self._page_url(listing, page))]
                    return
        finally:
            if ahead is not None:
                ahead.cancel()

    def _map_page(self, listing: Listing, page: int, raw: bytes | bytearray, content_type: str,
                  settings: bytes, seen: set[str]
                  ) -> tuple[int, int, list[Entry]] | ListingFailure:
        """A page's record count, how many of them are new, and their entries (remembered, or
        decoded and mapped); or its failure."""
        records = None
        if self.memo is not None and not self.redactor.appears_in(raw):
            records = memo.split_page(raw)
        key = None if records is None else memo.page_key(settings, records)
        remembered = None if key is None else self._recall(key, records, seen)
        if remembered is not None:
            seen.update(remembered[0])
            return len(remembered[0]), len(remembered[0]), remembered[1]
        try:
            body = parse_json(raw, content_type, listing.url)
        except errors.FetchError as exc:
            return listing.failure(str(exc), url=self._page_url(listing, page))
        contents = envelope_contents(body)
        if isinstance(contents, str):
            return listing.failure(contents, url=self._page_url(listing, page))
        count = len(contents)
        fresh = {record_identity(r): r for r in contents}
        contents.clear()  # each record is let go once mapped: a big page is never held twice
        for identity in seen.intersection(fresh):
            del fresh[identity]
        identities = list(fresh)
        batch: list[Entry] = []
        for identity in identities:
            seen.add(identity)
            batch.extend(map_record(listing, fresh.pop(identity), len(seen)))
        if key is not None and identities and len(identities) == count:
            batch.extend(_memo_of(key, identities, batch, self.redactor))
        return count, len(identities), batch

    def _recall(self, key: str, records: list[Raw] | None, seen: set[str]
                ) -> tuple[list[str], list[Entry]] | None:
        """A remembered page's identities and entries (and a note that it was used)."""
        assert self.memo is not None and records is not None
        found = self.memo.page(key)
        if found is None:
            return None
        job = self.job

        def rebuild(index: int, path: str, version: str | None) -> Document:
            record = parse_json(bytes(records[index]), "", "")
            return document(job.name, path.rpartition("/")[0], record, self.redactor, version)

        try:
            identities, entries = memo.recall(found, job.name, rebuild, len(records))
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):  # not a memo this
            # code wrote (the key covers the code: only damage gets here)
            return None
        if seen.intersection(identities):  # a repeated record: mapped the ordinary way
            return None
        return identities, [*entries, PageMemo(key, job.name, b"")]

    def _page_url(self, listing: Listing, page: int) -> str:
        return f"{listing.url}?{urlencode(self._params(page))}"

    def _params(self, page: int) -> dict[str, str]:
        return {"page": str(page), "pageSize": str(self.job.page_size)}

    async def _page(self, listing: Listing, page: int
                    ) -> tuple[bytes | bytearray, str] | ListingFailure:
        """The body of one page and its type, or a ListingFailure; credential refusals raise."""
        try:
            return await self.api.get_body(listing.url, params=self._params(page),
                                           headers=self.headers(),
                                           retry_statuses=frozenset({RATE_LIMIT_STATUS}))
        except errors.FetchError as exc:
            status = getattr(exc, "status", None)
            if status in (401, 403):
                raise errors.CredentialsError(self._refusal(status)) from None
            return listing.failure(str(exc), url=self._page_url(listing, page))

    def _refusal(self, status: int) -> str:
        name = self.job.name
        if status == 401:
            return (f"job {name!r}: Spectrum refused the token (HTTP 401): check the job's "
                    "token (SPECTRUM_API_TOKEN)")
        return (f"job {name!r}: Spectrum kept answering HTTP 403 through every retry: either "
                "the token is wrong or expired, or the rate limit of 100 requests per 60 s per "
                "endpoint was exceeded (another client using the same token, or a rate_limit "
                "above 1.5 requests/s)")
