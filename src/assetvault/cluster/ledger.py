"""The coordinator's books on items handed to the cluster: which wait to go out, which are out,
and what becomes of those a batch came back without. Pure: no Dask, no network.

Dask re-runs nothing by itself in a run (the scheduler allows no failures): when a worker dies,
its batches end with ``KilledWorker``, and only the items whose outcome never arrived are sent
again, each in a batch of its own, so an item that kills workers is found out alone and fails
after ``KILLS`` deaths instead of taking its batch-mates with it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import msgspec

from ..models import Item, Outcome, Status
from ..redact import redact_url

BATCH = 16  # items per task: a task round trip is 15-30 ms, a small file a few
KILLS = 3  # batches lost with an item in them before the item fails


class Waiting(msgspec.Struct, eq=False):
    """An item handed to the cluster, and the one who waits for its outcome."""

    item: Item
    previous: str | None
    future: asyncio.Future[Outcome]
    failures: int = 0
    alone: bool = False  # a worker died with it: it travels in a batch of its own

    @property
    def id(self) -> tuple[str, str]:
        return self.item.job, self.item.key


class Ledger:
    """Items waiting to go out, and items out on the cluster."""

    def __init__(self, batch: int = BATCH, kills: int = KILLS,
                 shown: Callable[[str], str] = redact_url) -> None:
        """``shown``: an item's URL as the run stores and shows it (its redactor's)."""
        self.batch = batch
        self._shown = shown
        self.kills = kills
        self._queue: deque[Waiting] = deque()
        self._sent: dict[tuple[str, str], Waiting] = {}
        self.ever_lost = False  # some item came back without its outcome, once at least

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, waiting: Waiting) -> None:
        self._queue.append(waiting)

    def due(self, batches_out: int, low_water: int) -> bool:
        """A batch should go now: a full one is waiting, or workers would idle."""
        return bool(self._queue) and (len(self._queue) >= self.batch or batches_out < low_water)

    def take(self) -> list[Waiting]:
        """The next batch (marked as out): up to ``batch`` items, or one that goes alone."""
        batch: list[Waiting] = []
        while self._queue and len(batch) < self.batch:
            waiting = self._queue.popleft()
            if waiting.future.done():
                continue  # its waiter was cancelled (the run is stopping)
            if waiting.alone and batch:
                self._queue.appendleft(waiting)
                break
            batch.append(waiting)
            if waiting.alone:
                break
        for waiting in batch:
            self._sent[waiting.id] = waiting
        return batch

    def out(self) -> list[Item]:
        """The items out on the cluster whose outcome has not arrived."""
        return [w.item for w in self._sent.values() if not w.future.done()]

    def deliver(self, outcome: Outcome) -> Waiting | None:
        """The waiter of an outcome that arrived, if it still waits (each is answered once:
        an outcome may come both as an event and with its batch)."""
        waiting = self._sent.pop((outcome.job, outcome.key), None)
        if waiting is None or waiting.future.done():
            return None
        return waiting

    def lost(self, batch: list[Waiting], why: str, *, killed: bool,
             count: bool = True) -> list[Outcome]:
        """A batch ended without some outcomes: those items go again (alone, if a worker died
        with them), or fail once they were lost ``kills`` times; their failed outcomes. A
        batch a worker refused (``count`` False) costs its items nothing."""
        failed, again = [], []
        for waiting in batch:
            if waiting.future.done() or self._sent.get(waiting.id) is not waiting:
                continue  # answered, or already out again in another batch
            del self._sent[waiting.id]
            self.ever_lost = True
            waiting.failures += count
            if waiting.failures >= self.kills:
                item = waiting.item
                outcome = Outcome(item.key, item.job, Status.FAILED, self._shown(item.url),
                                  item.path,
                                  error=f"not fetched: {why}, {waiting.failures} times")
                waiting.future.set_result(outcome)
                failed.append(outcome)
                continue
            waiting.alone = waiting.alone or killed
            again.append(waiting)
        self._queue.extendleft(reversed(again))  # first, and in their order
        return failed
