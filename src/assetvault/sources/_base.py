"""What every source shares: the JSON API it talks to, and how a record becomes ``asset.json``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import msgspec

from ..archive import layout
from ..models import Document, Json
from ..redact import Redactor

ASSET_JSON = "asset.json"
_JSON = msgspec.json.Encoder()


class JsonApi(Protocol):
    """One job's JSON API (http.JobApi): rate limits and retries are its business.

    After its retries it raises ``errors.HTTPStatusError`` (``.status``) for a status,
    ``errors.RetryableError``/``FetchError`` for network trouble and ``errors.BadResponseError``
    for a body that is not JSON. ``retry_statuses`` are backed off and retried like a 429.
    """

    async def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retry_statuses: frozenset[int] = frozenset(),
    ) -> Json: ...

    async def get_body(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retry_statuses: frozenset[int] = frozenset(),
    ) -> tuple[bytes | bytearray, str]:
        """Like ``get_json``, but the body unparsed, with its Content-Type."""
        ...


def document(job: str, folder: str, record: Json, redactor: Redactor,
             upstream_version: str | None, name: str = ASSET_JSON) -> Document:
    """The ``asset.json`` (or ``name``) of one record: the record as the API gave it, secrets
    scrubbed.

    Serialised by msgspec (8x the stdlib's C encoder here; a re-run of an unchanged archive
    spends much of its time making these), then scrubbed as text in one pass: at a million
    records, walking every string of every record through the redactor was most of a
    listing's cost.
    """
    path = f"{folder}/{name}"
    try:
        text = _JSON.encode(record).decode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (from a \\ud800 escape) is no UTF-8: written as that escape.
        text = json.dumps(record, ensure_ascii=True, separators=(",", ":"))
    body = redactor.json_text(text)
    return Document(key=path, job=job, path=path, body=body.encode("utf-8"),
                    upstream_version=upstream_version)


def redactor_for(secrets: Iterable[str]) -> Redactor:
    """The redactor of one job's secret values."""
    return Redactor(s for s in secrets if s)


def one_line(text: str, redactor: Redactor, limit: int = 300) -> str:
    """An error message as one short line without secrets."""
    line = " ".join(redactor(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def ident(value: Json) -> str | None:
    """An id as text (numbers or strings), or None when missing, empty or not a scalar."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and value):
        return str(value)
    return None


def text(value: Json) -> str | None:
    """The value when it is a non-empty string."""
    return value if isinstance(value, str) and value else None


class Holders(Protocol):
    """What the state says about a payload name several URLs of one record want."""

    def holder(self, key: str, urls: Sequence[str]) -> str | None:
        """The one of ``urls`` the state keeps under item ``key``, if any."""
        ...


def unique_name(name: str, url: str, taken: set[str]) -> str:
    """``name``, or a variant tagged by the URL's hash when another URL took it; claims it.

    Deterministic: the same names and URLs in the same order give the same result.
    """
    candidate, n = name, 0
    while candidate in taken:
        candidate = layout.tagged(name, layout.short_hash(f"{url}#{n}" if n else url, 8))
        n += 1
    taken.add(candidate)
    return candidate


def unique_names(folder: str, files: Sequence[tuple[str, str]],
                 holders: Holders | None = None) -> list[str]:
    """A distinct name in ``folder`` for each (name, URL), whatever order they are listed in.

    Where URLs share a name, the plain name stays with the URL the state keeps under it, else
    goes to the smallest URL; every other one is tagged by its URL's hash. Claimed in order of
    arrival, a listing that merely changed its order swapped the files on every re-run.
    """
    urls_of: dict[str, list[str]] = {}
    for name, url in files:
        urls_of.setdefault(name, []).append(url)
    if len(urls_of) == len(files):
        return [name for name, _ in files]  # no name shared: the common case
    chosen = {(name, _plain_owner(f"{folder}/{name}", urls, holders)): name
              for name, urls in urls_of.items()}
    taken = set(urls_of)
    for name, url in sorted(files):
        if (name, url) not in chosen:
            chosen[name, url] = unique_name(name, url, taken)
    return [chosen[file] for file in files]


def _plain_owner(key: str, urls: list[str], holders: Holders | None) -> str:
    """Which of ``urls`` gets the plain name of item ``key``."""
    if len(urls) > 1 and holders is not None and (held := holders.holder(key, urls)):
        return held
    return min(urls)
