"""Building the catalog: records streamed from the state, pages written as they fill.

One pass over the state in key order: a record joins its group's current page; a full page
(:data:`PAGE_RECORDS` records, or :data:`PAGE_FILES` files shown) is written once the next
record shows there is another after it, its previews rendered first. Memory holds one page of
records, one search shard and one listing page of groups, whatever the archive's size.
Everything is written through the archive's storage under ``catalog/``, beside the bag's tag
files and outside its manifests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..storage import Storage
from .markup import frame, nav
from .model import GroupSummary, Record, digest, group_title
from .overview import groups_table, overview
from .pages import RECORD_FILES, group_page, page_name
from .records import history_index, open_state, owner_name, records
from .renderer import Previews
from .search import SearchIndex
from .static import CSS, JS

CATALOG = "catalog/"
PAGE_RECORDS = 200  # records per page of a group
PAGE_FILES = 1000  # files per page: fewer records on a page whose records hold many
LIST_GROUPS = 200  # groups per page of the listing of groups
INDEX_GROUPS = 50  # groups shown on the overview itself


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What one build did."""

    records: int
    groups: int
    pages: int
    rendered: int  # previews rendered now (an image or a reason)
    reused: int  # previews an earlier build had made
    placeholders: int  # files shown without a preview
    seconds: float
    index: str  # where the overview is, as a user names it


@dataclass
class _Group:
    key: str
    title: str
    digest: str
    number: int = 0
    records: int = 0
    buffer: list[Record] = field(default_factory=list)
    files: int = 0  # in the buffer
    states: dict[str, int] = field(default_factory=dict)


def build_catalog(storage: Storage, database: Path, *, workers: int | None = None) -> BuildResult:
    """(Re)build ``catalog/`` of the archive in ``storage`` from its state ``database``."""
    started = time.monotonic()
    db = open_state(database)
    previews = Previews(storage, CATALOG, workers)
    try:
        site = _Site(storage, previews)
        for record in records(db, storage, history_index(storage)):
            site.add(record)
        site.close()
        storage.put_bytes(CATALOG + "static/catalog.css", CSS.encode())
        storage.put_bytes(CATALOG + "static/search.js", JS.encode())
        built = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        more = "groups/1.html" if site.listed > INDEX_GROUPS else None
        storage.put_bytes(CATALOG + "index.html", overview(db, site.first, more, built))
    finally:
        previews.close()
        db.close()
    c = previews.counts
    return BuildResult(site.search.records, site.listed, site.pages + 1, c.rendered, c.reused,
                       c.placeholders, time.monotonic() - started,
                       storage.where(CATALOG + "index.html"))


class _Site:
    """The pages of every group, the listing of groups and the search index, as they fill."""

    def __init__(self, storage: Storage, previews: Previews) -> None:
        self._storage = storage
        self._previews = previews
        self.search = SearchIndex(storage, CATALOG)
        self._group: _Group | None = None
        self._seen: set[str] = set()  # group digests written: a group never overwrites one
        self._listing: list[GroupSummary] = []
        self._list_number = 0
        self.first: list[GroupSummary] = []  # for the overview
        self.listed = 0
        self.pages = 0

    def add(self, record: Record) -> None:
        group = self._group
        if group is None or group.key != record.group:
            self._end_group()
            group = self._group = self._start(record.group)
        if len(group.buffer) == PAGE_RECORDS or (group.buffer and group.files >= PAGE_FILES):
            self._flush(group, more=True)
        group.buffer.append(record)
        group.files += min(len(record.files), RECORD_FILES)
        group.records += 1
        group.states[record.state] = group.states.get(record.state, 0) + 1

    def close(self) -> None:
        self._end_group()
        self._flush_listing(more=False)
        self.search.close()

    def _start(self, key: str) -> _Group:
        name = digest(key)
        while name in self._seen:  # the same group again, out of order: its own pages
            name = digest(name)
        self._seen.add(name)
        return _Group(key, group_title(key, owner_name(self._storage, key)), name)

    def _end_group(self) -> None:
        group = self._group
        if group is None:
            return
        self._flush(group, more=False)
        summary = GroupSummary(group.key, group.title, page_name(group.digest, 1),
                               group.records, tuple(sorted(group.states.items())))
        if len(self.first) < INDEX_GROUPS:
            self.first.append(summary)
        if len(self._listing) == LIST_GROUPS:
            self._flush_listing(more=True)
        self._listing.append(summary)
        self.listed += 1
        self._group = None

    def _flush(self, group: _Group, *, more: bool) -> None:
        group.number += 1
        n = group.number
        name = page_name(group.digest, n)
        prev = page_name(group.digest, n - 1) if n > 1 else None
        next_ = page_name(group.digest, n + 1) if more else None
        self._previews.ensure(f for r in group.buffer for f in r.files[:RECORD_FILES])
        html = group_page(group.title, group.buffer, self._previews, (prev, next_, f"page {n}"))
        self._storage.put_bytes(CATALOG + name, html)
        for record in group.buffer:
            self.search.add(record, name, group.title)
        group.buffer, group.files = [], 0
        self.pages += 1

    def _flush_listing(self, *, more: bool) -> None:
        if not self._listing and self._list_number > 0:
            return
        self._list_number += 1
        n = self._list_number
        pager = nav(f"{n - 1}.html" if n > 1 else None, f"{n + 1}.html" if more else None,
                    f"page {n}")
        body = (f"<h1>Organizations and owners</h1>{pager}{groups_table(self._listing, '../')}"
                f"{pager}")
        self._storage.put_bytes(f"{CATALOG}groups/{n}.html",
                                frame("Organizations and owners", body, "../"))
        self._listing = []
        self.pages += 1
