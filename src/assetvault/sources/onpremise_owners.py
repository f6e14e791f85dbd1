"""Whole OnPremise accounts (``products: all``): the account's lists of owners, and their elements.

``/products.json`` is paged (``per_page``, ``page``); ``/beers.json`` and ``/menu_items.json``
answer at once (api/onpremise-products.md). Every element is an owner whose assets are then
listed as for an explicit id, and whose own record is kept as ``product.json`` (``beer.json``,
``menu_item.json``) beside them. Pure: the requests are made by ``onpremise.OnpremiseSource``.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

import msgspec

from ..archive import layout
from ..config.jobs import OnpremiseJob
from ..models import Document, Json, ListingFailure
from ..redact import Redactor
from ._base import document, ident, one_line, text

PAGED = frozenset({"products"})  # the only list whose paging is documented
# The API asks for a last_updated_at on every page after the first; this early one keeps the
# list whole: a product nobody edited may still have edited assets, so `since` never applies.
FULL_LISTING = "1970-01-01 00:00:00"
# The singular that wraps an element ({"product": {...}}) is the record file's own name.
SINGULAR = {kind: name.removesuffix(".json") for kind, name in layout.OWNER_RECORDS.items()}


class OwnerList(msgspec.Struct, frozen=True):
    """The list of one kind of owner of a job's account."""

    job: OnpremiseJob
    kind: str
    redactor: Redactor

    @property
    def url(self) -> str:
        return f"{self.job.base_url.rstrip('/')}/{quote(self.kind, safe='')}.json"

    @property
    def paged(self) -> bool:
        return self.kind in PAGED

    @property
    def key(self) -> str:
        return f"onpremise/{layout.safe_segment(self.kind)}"

    def params(self, page: int) -> dict[str, str]:
        params = {"api_key": self.job.api_key}
        if self.paged:
            params.update(per_page=str(self.job.page_size), page=str(page))
            if page > 1:
                params["last_updated_at"] = FULL_LISTING
        return params

    def shown_url(self, page: int) -> str:
        """The URL of a page as it may be shown: ``api_key=***``."""
        return self.redactor.url(f"{self.url}?{urlencode(self.params(page))}")

    def failure(self, reason: str, page: int, *, position: int | None = None) -> ListingFailure:
        key = self.key if position is None else f"{self.key}#{position}"
        return ListingFailure(job=self.job.name, key=key, url=self.shown_url(page),
                              error=one_line(reason, self.redactor))


def list_elements(kind: str, body: Json) -> list[Json] | str:
    """The elements of a list answer, or why it is unusable.

    ``{"products": [...]}`` as ``{"assets": [...]}`` is, or a bare JSON array.
    """
    if isinstance(body, list):
        return body
    elements = body.get(kind) if isinstance(body, dict) else None
    if isinstance(elements, list):
        return elements
    return f"the list is neither a JSON array nor an object with a {kind} array"


def record_of(kind: str, element: Json) -> Json:
    """The owner's record: ``{"product": {...}}`` (how some OnPremise lists wrap each element)
    gives the inner object; anything else is the record itself."""
    if isinstance(element, dict) and "id" not in element:
        inner = element.get(SINGULAR[kind])
        if isinstance(inner, dict):
            return inner
    return element


def map_owner(listing: OwnerList, element: Json, page: int, position: int
              ) -> tuple[str | None, Document | ListingFailure]:
    """The owner id of one element (None when it has none) and its record's document, or the
    failure that stands for the element; ``position`` (1-based, over the whole list) names it."""
    record = record_of(listing.kind, element)
    noun = SINGULAR[listing.kind].replace("_", " ")
    if not isinstance(record, dict):
        return None, listing.failure(f"a {noun} is not an object", page, position=position)
    owner_id = ident(record.get("id"))
    if owner_id is None:
        return None, listing.failure(f"a {noun} has no id", page, position=position)
    folder, _, name = layout.onpremise_record(listing.kind, owner_id).rpartition("/")
    doc = document(listing.job.name, folder, record, listing.redactor,
                   text(record.get("updated_at")), name)
    return owner_id, doc


def record_patterns(job: OnpremiseJob) -> list[tuple[str, str]]:
    """(folder prefix, record file name) of the owners' records of every kind listed whole:
    what tells, after a run, which owners the account no longer lists."""
    return [(f"onpremise/{layout.safe_segment(kind)}/", layout.OWNER_RECORDS[kind])
            for kind in sorted(job.whole)]
