"""A typed, bounded, closable channel between two stages of a run.

Each sender's side is closed when it is done (:func:`close_when_done`, so a failed or
cancelled sender closes too); once every sender has closed and the channel is drained, every
receiver gets ``None`` and stops. No stage counts its consumers or sends end markers of its own.

Closing never waits: a stopped run cancels its stages while channels may be full, and nothing
may then hang on a put no receiver will ever take.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable, Iterable
from typing import Generic, Protocol, TypeVar

from .slots import wake_one

__all__ = ["Channel", "close_when_done"]

T = TypeVar("T")


class Channel(Generic[T]):
    """At most ``capacity`` values in flight from ``senders`` senders to any receivers.

    A deque and two lines of waiting futures rather than an asyncio.Queue bounded by a
    semaphore: every item of a run crosses two channels, and the pair cost ~18 calls a
    value (a tenth of a small file's calls on the loop)."""

    def __init__(self, capacity: int, senders: int = 1) -> None:
        self._values: collections.deque[T] = collections.deque()
        self._capacity = capacity
        self._senders = senders
        self._ended = False
        self._receivers: collections.deque[asyncio.Future[None]] = collections.deque()
        self._waiting_senders: collections.deque[asyncio.Future[None]] = collections.deque()

    async def send(self, value: T) -> None:
        """Wait for room, then hand ``value`` over."""
        while len(self._values) >= self._capacity:
            await self._wait(self._waiting_senders, self._room)
        self._values.append(value)
        wake_one(self._receivers)

    def close(self) -> None:
        """One sender is done; after the last, receivers drain what is left and stop."""
        self._senders -= 1
        if self._senders == 0:
            self._ended = True
            for waiter in self._receivers:  # every receiver sees the end
                if not waiter.done():
                    waiter.set_result(None)

    async def receive(self) -> T | None:
        """The next value, or None once every sender closed and nothing is left."""
        while not self._values:
            if self._ended:
                return None
            await self._wait(self._receivers, self._ready)
        return self._take()

    async def wait_ready(self, timeout: float) -> None:
        """Return once a value is waiting or the channel has ended, or after ``timeout``
        seconds, whichever comes first (nothing is taken: see :meth:`receive_ready`)."""
        if self._ready():
            return
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._receivers.append(waiter)
        timer = loop.call_later(timeout, _settle, waiter)
        try:
            await waiter
        except BaseException:
            # Woken, then cancelled before it ran: the turn it was given goes to the next.
            if self._ready():
                wake_one(self._receivers)
            raise
        finally:
            timer.cancel()
            with contextlib.suppress(ValueError):
                self._receivers.remove(waiter)  # still in line: the timer (or a cancel) woke it

    @property
    def drained(self) -> bool:
        """Every sender closed and nothing is left: receive would return None."""
        return self._ended and not self._values

    def receive_ready(self) -> T | None:
        """A value already waiting, without waiting (None if there is none, or at the end)."""
        return self._take() if self._values else None

    def _take(self) -> T:
        value = self._values.popleft()
        wake_one(self._waiting_senders)
        return value

    def _room(self) -> bool:
        return len(self._values) < self._capacity

    def _ready(self) -> bool:
        return bool(self._values) or self._ended

    async def _wait(self, line: collections.deque[asyncio.Future[None]],
                    ready: Callable[[], bool]) -> None:
        waiter = asyncio.get_running_loop().create_future()
        line.append(waiter)
        try:
            await waiter
        except BaseException:
            waiter.cancel()
            with contextlib.suppress(ValueError):
                line.remove(waiter)
            # Woken, then cancelled before it ran: the turn it was given goes to the next.
            if ready():
                wake_one(line)
            raise


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Closable(Protocol):
    def close(self) -> None: ...


def close_when_done(tasks: Iterable[asyncio.Task[None]], *channels: _Closable) -> None:
    """Each task closes one sender's side of ``channels`` when it ends, however it ends.

    A done callback, not a ``finally`` in the stage: a task cancelled before its first step
    never runs its body, and a channel left open would keep its receivers waiting for ever.
    """
    def close(_: asyncio.Task[None]) -> None:
        for channel in channels:
            channel.close()
    for task in tasks:
        task.add_done_callback(close)
