"""The coordinator's books on items out on the cluster: what goes again after a worker died."""

from __future__ import annotations

import asyncio

from assetvault.cluster.ledger import Ledger, Waiting
from assetvault.models import Item, Outcome, Status

LOOP = asyncio.new_event_loop()  # futures only: nothing here runs on it


def _waiting(key: str) -> Waiting:
    item = Item(key, "job", f"http://files/{key}?api_key=SECRET", f"job/{key}")
    return Waiting(item, None, LOOP.create_future())


def _done(w: Waiting) -> Outcome:
    return Outcome(w.item.key, "job", Status.DOWNLOADED, w.item.url, w.item.path, 1, "ab" * 32)


def test_an_item_that_kills_workers_fails_alone_and_its_batch_mates_go_on() -> None:
    ledger = Ledger(batch=4, kills=3)
    poison, *mates = [_waiting(k) for k in "pabc"]
    for w in (poison, *mates):
        ledger.add(w)
    first = ledger.take()
    assert first == [poison, *mates]
    # "a" had finished before the worker died: it is answered, not sent again.
    assert ledger.deliver(_done(mates[0])) is mates[0]
    mates[0].future.set_result(_done(mates[0]))
    assert ledger.lost(first, "the worker died", killed=True) == []
    # From now on each travels alone: one death costs one item's attempt.
    again = [ledger.take() for _ in range(3)]
    assert again == [[poison], [mates[1]], [mates[2]]]
    for w in mates[1:]:
        ledger.deliver(_done(w))
        w.future.set_result(_done(w))
    assert ledger.lost([poison], "the worker died", killed=True) == []
    assert ledger.take() == [poison]
    failed = ledger.lost([poison], "the worker died (KilledWorker)", killed=True)
    assert [f.key for f in failed] == ["p"]
    assert poison.future.result().status is Status.FAILED
    assert "3 times" in (poison.future.result().error or "")
    # Reported (and stored) with its URL, as the run shows URLs: redacted.
    assert poison.future.result().url == "http://files/p?api_key=***"
    assert ledger.take() == [] and len(ledger) == 0


def test_an_outcome_is_delivered_once_and_a_late_batch_loses_nothing() -> None:
    ledger = Ledger(batch=2)
    a, b = _waiting("a"), _waiting("b")
    ledger.add(a)
    ledger.add(b)
    batch = ledger.take()
    assert ledger.deliver(_done(a)) is a
    a.future.set_result(_done(a))
    assert ledger.deliver(_done(a)) is None  # the same outcome again, with its batch
    ledger.lost(batch, "no outcome", killed=False)
    assert ledger.take() == [b] and not b.alone  # not killed: batched as usual


def test_a_cancelled_waiter_is_not_sent() -> None:
    ledger = Ledger(batch=4)
    a, b = _waiting("a"), _waiting("b")
    ledger.add(a)
    ledger.add(b)
    a.future.cancel()
    assert ledger.take() == [b]
    assert ledger.due(batches_out=0, low_water=1) is False


def test_small_batches_go_only_while_workers_would_idle() -> None:
    ledger = Ledger(batch=3)
    ledger.add(_waiting("a"))
    assert ledger.due(batches_out=0, low_water=2)
    assert not ledger.due(batches_out=2, low_water=2)
    ledger.add(_waiting("b"))
    ledger.add(_waiting("c"))
    assert ledger.due(batches_out=2, low_water=2)


def test_a_refused_batch_costs_its_items_nothing() -> None:
    ledger = Ledger(batch=2, kills=1)
    a = _waiting("a")
    ledger.add(a)
    for _ in range(5):
        ledger.lost(ledger.take(), "a worker refused it", killed=False, count=False)
    assert not a.future.done() and a.failures == 0 and ledger.take() == [a]
