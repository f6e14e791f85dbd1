"""The coordinator's side of a cluster run: items go out in batches, outcomes come back (as
events the moment each is known, and with their batch), a watch on the scheduler and the
workers. What to send again and when to give up is the ledger's."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import itertools
import logging
from collections.abc import Callable

from distributed import Future, KilledWorker

from .. import __version__
from ..models import Item, Outcome
from ..net.origin import Origin, origin_of
from ..redact import redact_url
from ..run.downloads import Transfer
from ..transfer.fetch import JobFetch
from .connect import Cluster, share
from .ledger import Ledger, Waiting
from .salvage import Found
from .wire import Refusal, decode_outcome
from .worker import fetch_batch, hold_off, quiesce

log = logging.getLogger("assetvault")

WATCH_EVERY = 1.0  # seconds between looks at the scheduler (a timer, nothing waits on it)
PING_WITHIN = 5.0
CANCEL_WITHIN = 5.0  # seconds to tell the scheduler to drop what is still out


class Dispatch:
    """Batches items to the cluster's workers and hands each outcome to whoever waits."""

    def __init__(self, cluster: Cluster, local: Transfer, api_origins: frozenset[Origin],
                 *, timeout: float, abort: Callable[[str], None],
                 on_bytes: Callable[[int], None],
                 shown: Callable[[str], str] = redact_url,
                 placed: Found | None = None) -> None:
        assert cluster.plugin is not None
        self._cluster = cluster
        self._name = cluster.plugin
        self._local = local  # items on an API origin: fetched here, in the API's one bucket
        self._api = api_origins
        self._timeout = timeout
        self._abort = abort
        self._on_bytes = on_bytes  # the progress bar: bytes of each outcome as it arrives
        self._placed = placed  # what a dead worker placed but could not report
        self._ledger = Ledger(shown=shown)  # an item lost for good is reported with its URL
        self._refusing: set[str] = set()  # workers that refused a batch: none go there now
        self._checked: set[str] = set(cluster.workers)  # versions known to match
        self._wake = asyncio.Event()
        self._batches: dict[asyncio.Task[None], Future[object]] = {}
        self._keys = itertools.count()
        self._background: list[asyncio.Task[None]] = []
        self.low_water = 2 * max(1, len(cluster.workers))

    # the engine's side --------------------------------------------------------------------

    async def __call__(self, item: Item, job: JobFetch, previous: str | None) -> Outcome:
        if origin_of(item.url) in self._api:
            return await self._local(item, job, previous)
        waiting = Waiting(item, previous, asyncio.get_running_loop().create_future())
        self._ledger.add(waiting)
        self._wake.set()
        return await waiting.future

    def start(self) -> None:
        self._cluster.client.subscribe(self._name, self._on_event)  # the plugin's topic
        self._background = [asyncio.create_task(self._send()), asyncio.create_task(self._watch())]

    async def close(self) -> None:
        for task in [*self._background, *self._batches]:
            task.cancel()
        futures = list(self._batches.values())
        if futures:
            self._cluster.lost = True
        if futures and not self._cluster.gone:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._cluster.client.cancel(futures), CANCEL_WITHIN)
                # A placement running in a worker's thread finishes whatever its task does.
                await asyncio.wait_for(self._cluster.client.run(quiesce, self._name),
                                       CANCEL_WITHIN * 2)
        await asyncio.gather(*self._background, *self._batches, return_exceptions=True)
        with contextlib.suppress(Exception):  # a client that closed itself has no topics
            self._cluster.client.unsubscribe(self._name)

    # sending ------------------------------------------------------------------------------

    async def _send(self) -> None:
        """Full batches as soon as they fill; smaller ones only while workers would idle."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._ledger.due(len(self._batches), self.low_water) and self._usable():
                self._submit(self._ledger.take())

    async def _check_newcomers(self, workers: frozenset[str]) -> None:
        """A worker that joins during the run takes part only with this assetvault version
        (the same check as before listing; a worker without assetvault cannot even say)."""
        new = sorted(workers - self._checked)
        if not new:
            return
        found = await self._cluster.client.run(importlib.metadata.version, "assetvault",
                                               workers=new)
        for worker, version in found.items():
            self._checked.add(worker)
            if version != __version__ and worker not in self._refusing:
                self._refusing.add(worker)
                log.warning("Dask worker %s joined without assetvault %s (%s): no items go "
                            "there", worker, __version__,
                            version if isinstance(version, str) else "not installed")

    def _usable(self) -> bool:
        """Some worker can take a batch (none that refused: their items wait for another,
        or for the watch to stop the run when none comes within the timeout)."""
        return not self._refusing or bool(self._cluster.workers - self._refusing)

    def _submit(self, batch: list[Waiting]) -> None:
        if not batch:
            return
        usable = sorted(self._cluster.workers - self._refusing) if self._refusing else None
        future = self._cluster.client.submit(
            fetch_batch, self._name, [(w.item, w.previous) for w in batch],
            key=f"{self._name}-batch-{next(self._keys)}", workers=usable)
        task = asyncio.create_task(self._await(future, batch))
        self._batches[task] = future
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._batches.pop(task, None)
        self._wake.set()

    # receiving ----------------------------------------------------------------------------

    async def _await(self, future: Future[object], batch: list[Waiting]) -> None:
        try:
            result = await self._result(future, batch)
        except KilledWorker as exc:
            await self._salvage(batch, _address_of(exc))
            self._lost(batch, "the worker fetching it died (KilledWorker)", killed=True)
            return
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise
            self._lost(batch, "its batch was cancelled on the cluster", killed=False)
            return
        except Exception as exc:
            self._lost(batch, f"its batch failed on the cluster ({type(exc).__name__})",
                       killed=False)
            return
        finally:
            future.release()  # type: ignore[no-untyped-call]
        if isinstance(result, Refusal):
            self._refused(batch, result)
            return
        for wire in result if isinstance(result, list) else ():
            self._deliver(wire)
        self._lost(batch, "the worker sent no outcome for it", killed=False)

    @staticmethod
    async def _result(future: Future[object], batch: list[Waiting]) -> object:
        """The batch's result; None when every item was answered by its event first. Its
        result is then not wanted: released at once, the batch is forgotten by Dask, which
        would otherwise run it again on another worker (fetching every item twice) should
        the worker holding the result die before the result was gathered."""
        result = asyncio.ensure_future(future)
        answered = asyncio.ensure_future(asyncio.wait([w.future for w in batch]))
        try:
            await asyncio.wait((result, answered), return_when=asyncio.FIRST_COMPLETED)
            if result.done() or any(w.future.cancelled() for w in batch):
                # A waiter cancelled is the run stopping, not an answer: the batch stays out
                # until close() cancels it and has its worker stop and settle.
                return await result
            return None
        finally:
            answered.cancel()
            if not result.done():
                result.cancel()

    def _on_event(self, event: tuple[float, object]) -> None:
        _, msg = event
        # msgpack may give a list back as a tuple.
        if not isinstance(msg, list | tuple) or not msg:
            return
        if msg[0] == "done" and len(msg) == 2:
            log.debug("cluster: an outcome arrived as an event")
            self._deliver(msg[1])
        elif msg[0] == "slow" and len(msg) == 3:
            # One worker was told to wait: the origin meant the whole cluster.
            self._background.append(asyncio.create_task(self._hold_off(msg[1], msg[2])))

    async def _hold_off(self, origin: object, seconds: object) -> None:
        await self._cluster.client.run(hold_off, self._name, origin, seconds)

    async def _salvage(self, batch: list[Waiting], worker: str) -> None:
        """Outcomes a dead worker placed but whose reports died with it: without them each
        such file would be fetched again."""
        unanswered = [(w.item, w.previous) for w in batch if not w.future.done()]
        if self._placed is None or not unanswered:
            return
        try:
            # Bounded: the batch's items wait for this, holding their slots.
            found = await asyncio.wait_for(
                self._placed(unanswered, worker, self._ledger.out), 2 * self._timeout)
        except Exception as exc:  # only a saving lost: the items go again
            log.warning("what a dead worker (%s) placed could not be looked up (%s): what it "
                        "placed but did not report is fetched again", worker or "unknown",
                        type(exc).__name__)
            return
        if found:
            log.info("%d files a dead worker placed were found in the archive", len(found))
        for outcome in found:
            self._answer(outcome)

    def _deliver(self, wire: object) -> None:
        try:
            outcome = decode_outcome(wire)
        except ValueError:
            log.debug("a worker sent something that is not an outcome")
            return
        self._answer(outcome)

    def _answer(self, outcome: Outcome) -> None:
        waiting = self._ledger.deliver(outcome)
        if waiting is not None:
            self._on_bytes(outcome.fetched_bytes)
            waiting.future.set_result(outcome)

    def _refused(self, batch: list[Waiting], refusal: Refusal) -> None:
        """A worker that cannot take part (it cannot see the archive, it lost its settings)
        gets no more batches; its batch goes to the others, costing its items nothing."""
        if refusal.worker and refusal.worker not in self._refusing:
            self._refusing.add(refusal.worker)
            log.warning("Dask worker %s cannot take part in this run (%s): no more items go "
                        "there", refusal.worker, refusal.reason)
        self._lost(batch, f"a worker refused it: {refusal.reason}", killed=False,
                   count=not refusal.worker)

    def _lost(self, batch: list[Waiting], why: str, *, killed: bool, count: bool = True) -> None:
        for outcome in self._ledger.lost(batch, why, killed=killed, count=count):
            log.warning("%s: %s", outcome.key, outcome.error)
        self._cluster.lost = self._cluster.lost or self._ledger.ever_lost
        self._wake.set()

    # watching -----------------------------------------------------------------------------

    async def _watch(self) -> None:
        """The scheduler answers, some worker is there, and each worker has its share: a
        scheduler silent, or no worker, for the run's ``timeout`` ends the run."""
        loop = asyncio.get_running_loop()
        answered = alone = loop.time()
        while True:
            await asyncio.sleep(WATCH_EVERY)
            now = loop.time()
            try:
                workers = await asyncio.wait_for(self._cluster.client.workers(), PING_WITHIN)
            except Exception:
                if now - answered > self._timeout:
                    self._cluster.gone = True
                    self._abort(f"the Dask scheduler at {self._cluster.address} stopped "
                                "answering; the state is kept: run again to resume")
                    return
                continue
            answered = now
            if workers - self._refusing:
                alone = now
            elif now - alone > self._timeout:
                self._abort(f"no Dask worker for {self._timeout:g} s (timeout); the state is "
                            "kept: run again to resume")
                return
            try:
                if workers - self._checked:
                    await asyncio.wait_for(self._check_newcomers(workers), PING_WITHIN * 2)
                usable = workers - self._refusing
                if usable != self._cluster.workers:
                    await asyncio.wait_for(share(self._cluster, usable), PING_WITHIN * 2)
                    self.low_water = 2 * max(1, len(usable))
                    self._wake.set()  # a newcomer may take what waits
            except Exception as exc:  # asked again at the next look; the watch goes on
                log.debug("checking or sharing the limits between workers failed: %r", exc)


def _address_of(killed: KilledWorker) -> str:
    """The address of the worker that died ("" if Dask did not say)."""
    address = getattr(getattr(killed, "last_worker", None), "address", None)
    return address if isinstance(address, str) else ""
