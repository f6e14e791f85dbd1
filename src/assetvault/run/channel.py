"""A typed, bounded, closable channel between two stages of a run.

Each sender's side is closed when it is done (:func:`close_when_done`, so a failed or
cancelled sender closes too); once every sender has closed and the channel is drained, every
receiver gets ``None`` and stops. No stage counts its consumers or sends end markers of its own.

Closing never waits: a stopped run cancels its stages while channels may be full, and nothing
may then hang on a put no receiver will ever take.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

__all__ = ["Channel", "close_when_done"]

T = TypeVar("T")


class _End:
    """What a receiver finds once every sender closed (internal: never returned)."""


_END = _End()


class Channel(Generic[T]):
    """At most ``capacity`` values in flight from ``senders`` senders to any receivers."""

    def __init__(self, capacity: int, senders: int = 1) -> None:
        # The queue itself is unbounded, so close() can always enqueue the end; the room
        # left for values is the semaphore.
        self._queue: asyncio.Queue[T | _End] = asyncio.Queue()
        self._room = asyncio.Semaphore(capacity)
        self._senders = senders

    async def send(self, value: T) -> None:
        """Wait for room, then hand ``value`` over."""
        await self._room.acquire()
        self._queue.put_nowait(value)

    def close(self) -> None:
        """One sender is done; after the last, receivers drain what is left and stop."""
        self._senders -= 1
        if self._senders == 0:
            self._queue.put_nowait(_END)

    async def receive(self) -> T | None:
        """The next value, or None once every sender closed and nothing is left."""
        return self._take(await self._queue.get())

    def receive_ready(self) -> T | None:
        """A value already waiting, without waiting (None if there is none, or at the end)."""
        try:
            return self._take(self._queue.get_nowait())
        except asyncio.QueueEmpty:
            return None

    def _take(self, got: T | _End) -> T | None:
        if isinstance(got, _End):
            self._queue.put_nowait(got)  # every other receiver sees the end too
            return None
        self._room.release()
        return got


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
