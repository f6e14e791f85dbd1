"""Slots: how many fetches may run at once, per job and per host.

asyncio.Semaphore does the same job in ~8 calls an acquire and release (``locked()`` scans
its waiters every time), and a file takes two; these take three each, on the path every
small file walks. A freed slot goes straight to the longest waiter, first come first served.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from types import TracebackType


class Slots:
    """``count`` slots; ``async with slots:`` holds one."""

    __slots__ = ("_free", "_line")

    def __init__(self, count: int) -> None:
        self._free = count
        self._line: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def free(self) -> int:
        return self._free

    async def __aenter__(self) -> None:
        if self._free > 0 and not self._line:
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._line.append(waiter)
        try:
            await waiter  # a release hands its slot over: _free never counts it
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed a slot, then cancelled before it ran: pass it on
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._line.remove(waiter)
            raise

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._release()

    def _release(self) -> None:
        if not wake_one(self._line):
            self._free += 1


def wake_one(line: collections.deque[asyncio.Future[None]]) -> bool:
    """Wake the longest waiter of ``line`` still waiting; False if there is none."""
    while line:
        waiter = line.popleft()
        if not waiter.done():
            waiter.set_result(None)
            return True
    return False
