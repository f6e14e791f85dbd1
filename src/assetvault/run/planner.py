"""The planner: what each listed entry needs, decided a batch at a time against the state."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import msgspec

from ..archive.placer import Placer
from ..archive.store import Store
from ..archive.upkeep import check_batch, check_docs, fresh_items, write_docs
from ..models import (
    Decided,
    DocRecord,
    Document,
    Entry,
    Item,
    KnownDocument,
    ListingFailure,
    Outcome,
    PageMemo,
    Pending,
    Row,
    RunResult,
    Seen,
    Status,
)
from .channel import Channel
from .downloads import Downloads
from .tally import Tally
from .threads import Offload

T = TypeVar("T")
PLAN_BATCH = 1000  # entries per state lookup (one statement) and file check


class PlanContext(msgspec.Struct, frozen=True):
    """What a planner needs of its run."""

    reader: Store | None  # the state as it was (None: no archive yet)
    run_id: int
    placer: Placer
    io_call: Offload
    tally: Tally
    verify_existing: bool


class Planner:
    """Takes entries; sends the items to fetch to the workers, and everything else it decides
    (pending, up to date, asset.json written, pages remembered) straight to the writer."""

    write = True  # asset.json files are written; a dry run's planner writes nothing

    def __init__(self, entries: Channel[list[Entry]], work: Channel[tuple[Item, str | None]],
                 results: Channel[list[Decided]], run: PlanContext) -> None:
        self.entries = entries
        self.work = work
        self.results = results
        self.reader = run.reader
        self.run_id = run.run_id
        self.placer = run.placer
        self.io_call = run.io_call
        self.tally = run.tally
        self.verify_existing = run.verify_existing
        self.downloads: Downloads | None = None  # handed over once the pipeline made them

    async def run(self) -> None:
        """Plan every entry, PLAN_BATCH at a time (the engine closes the channels it feeds
        when this ends, however it ends)."""
        while (first := await self.entries.receive()) is not None:
            batch = list(first)
            while len(batch) < PLAN_BATCH and (more := self.entries.receive_ready()):
                batch.extend(more)
            for start in range(0, len(batch), PLAN_BATCH):
                await self._plan_batch(batch[start:start + PLAN_BATCH])

    def _lookup(self, items: list[Item], docs: list[Document | KnownDocument]
                ) -> tuple[dict[str, Row], dict[str, Row]]:
        """State rows of these entries, and files already fetched in this run by URL."""
        if self.reader is None or not (items or docs):
            return {}, {}
        keys = [e.key for e in items] + [d.key for d in docs]
        # Until a fetch of this run falls out of the downloads' memory, it knows them all.
        if self.downloads is not None and not self.downloads.forgotten:
            return self.reader.rows(keys), {}
        urls = sorted({self.tally.redact.url(i.url) for i in items})
        return self.reader.rows(keys), self.reader.fetched_in_run(urls, self.run_id)

    async def _check(self, items: list[Item], docs: list[Document | KnownDocument],
                     rows: dict[str, Row]) -> tuple[set[str], list[DocRecord], list[str]]:
        """Items up to date, asset.json records (written where changed), documents unchanged."""
        if self.verify_existing:  # re-hashes every file: a thread's work
            fresh, records = await self.io_call(check_batch, self.placer, items, docs, rows,
                                                self.write, self.tally.redact.url, True)
            return fresh, records, []
        fresh = fresh_items(self.placer.storage, items, rows, self.tally.redact.url)
        same, changed = check_docs(self.placer.storage, docs, rows)
        records = (await self.io_call(write_docs, self.placer, changed, rows, self.write)
                   if changed else [])
        return fresh, records, [doc.key for doc in same]

    async def _plan_batch(self, batch: list[Entry]) -> None:
        items = [e for e in batch if isinstance(e, Item)]
        docs = [e for e in batch if isinstance(e, Document | KnownDocument)]
        rows, fetched = self._lookup(items, docs)
        fresh, records, seen = await self._check(items, docs, rows)
        out: list[Decided] = [*self._others(batch), *records]
        for item in items:
            if item.key in fresh:
                seen.append(item.key)
            else:
                out = await self._fetch(item, rows, fetched, out)
        if fresh:
            self.tally.up_to_date([item for item in items if item.key in fresh])
        if seen:
            out.append(Seen(seen))
        if out:
            await self.results.send(out)

    def _others(self, batch: list[Entry]) -> list[Decided]:
        """What the entries that are not files or documents come to."""
        out: list[Decided] = []
        for entry in batch:
            if isinstance(entry, Item | Pending):
                self.tally.found(entry)
            if isinstance(entry, ListingFailure):
                self.tally.listing_failed(entry)
            elif isinstance(entry, Pending):
                out.append(Outcome(entry.key, entry.job, Status.PENDING, entry.url,
                                   error=entry.reason))
            elif isinstance(entry, PageMemo):
                out.append(entry)
        return out

    async def _fetch(self, item: Item, rows: dict[str, Row], fetched: dict[str, Row],
                     out: list[Decided]) -> list[Decided]:
        """Link the item to a file this run already fetched, or hand it to the workers; what
        is still unsent of ``out`` afterwards."""
        earlier = fetched.get(self.tally.redact.url(item.url))
        if earlier is not None and earlier.path and self.downloads is not None:
            out.append(await self.downloads.link(item, _as_outcome(earlier)))
            return out
        if out:  # what is decided reaches the writer before a download can wait
            await self.results.send(out)
        row = rows.get(item.key)
        await self.work.send((item, row.sha256 if row is not None else None))
        return []


class DryPlanner(Planner):
    """A dry run: prints what would be fetched and how much is known; fetches and writes
    nothing."""

    write = False

    def __init__(self, entries: Channel[list[Entry]], work: Channel[tuple[Item, str | None]],
                 results: Channel[list[Decided]], run: PlanContext, *, result: RunResult,
                 out: Callable[[str], None]) -> None:
        super().__init__(entries, work, results, run)
        self.result = result
        self.out = out

    async def _fetch(self, item: Item, rows: dict[str, Row], fetched: dict[str, Row],
                     out: list[Decided]) -> list[Decided]:
        self.result.planned_files += 1
        if item.expected_size is None:
            self.result.planned_unknown += 1
            size = "size unknown"
        else:
            self.result.planned_bytes += item.expected_size
            size = f"{item.expected_size} bytes"
        shown = self.tally.redact.url(item.url)
        self.out(f"{item.job}\t{shown}\t-> data/{item.path}\t{size}")
        return out


def _as_outcome(row: Row) -> Outcome:
    return Outcome(row.key, "", Status.DOWNLOADED, row.url or "",
                   row.path or None, row.size or 0, row.sha256)
