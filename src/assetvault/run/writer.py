"""The writer: the one task that writes the state, a batch of decisions per transaction."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from ..archive.journal import Journal
from ..archive.store import Store
from ..config.options import utc_text
from ..models import Decided, DocRecord, Outcome, PageMemo, Seen, Status
from .channel import Channel
from .tally import Tally
from .threads import Offload

BATCH = 1024  # decisions per transaction at most
# Seconds a commit waits for more results after the last one: a commit is a hop to the
# state's thread (a futex wake-up, ~0.1-0.3 ms on this VM) and a transaction, and results
# arrive one by one; without it, the mixed set made ~1 commit a file.
GROUP = 0.05



class Writer:
    """Records what the planner and the workers decided; lets the journal go of what is in."""

    def __init__(self, results: Channel[list[Decided]], *, store: Store | None, run_id: int,
                 journal: Journal, tally: Tally, call: Offload) -> None:
        self.results = results
        self.store = store  # None: a dry run, which records nothing
        self.run_id = run_id
        self.journal = journal
        self.tally = tally
        self.call = call
        self._placed_committed = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last = -GROUP
        try:
            while (first := await self.results.receive()) is not None:
                batch = list(first)
                due = last + GROUP  # a commit long after the last one goes at once
                while len(batch) < BATCH:
                    if (more := self.results.receive_ready()) is not None:
                        batch.extend(more)
                    elif self.results.drained or (left := due - loop.time()) <= 0:
                        break
                    else:
                        await self.results.wait_ready(left)
                await self._record(batch)
                last = loop.time()
        finally:
            self.journal.clear_if(self._placed_committed, final=True)

    async def _record(self, batch: list[Decided]) -> None:
        outcomes = [self.tally.outcome(o) for o in batch if isinstance(o, Outcome)]
        docs = [d for d in batch if isinstance(d, DocRecord)]
        pages = [(m.key, m.job, m.entries) for m in batch if isinstance(m, PageMemo)]
        seen = [key for s in batch if isinstance(s, Seen) for key in s.keys]
        for doc in docs:
            self.tally.doc_failed(doc)
        if self.store is None or not batch:
            return
        now = utc_text(datetime.now(UTC))
        await self.call(self.store.record, outcomes, docs, self.run_id, now, pages, seen)
        # Outcomes are in the store now: the journal can let go of their placements.
        self._placed_committed += sum(1 for d in docs if d.written and not d.error)
        self._placed_committed += sum(1 for o in outcomes if o.status is Status.DOWNLOADED)
        self.journal.clear_if(self._placed_committed)
