"""A thread pool whose running work can be waited for, even after its awaiters were cancelled.

Cancelling a task that awaits ``run_in_executor`` does not stop the thread: a file may still
be written and renamed after the run was told to stop. Before the bag is sealed, that work
must be over, so this pool remembers what it is running.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, Protocol, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class TrackedPool(concurrent.futures.ThreadPoolExecutor):
    """A ThreadPoolExecutor with :meth:`drain`."""

    def __init__(self, workers: int, name: str) -> None:
        super().__init__(workers, thread_name_prefix=name)
        self._running: set[concurrent.futures.Future[Any]] = set()
        self._guard = threading.Lock()

    def submit(self, fn: Callable[P, T], /, *args: P.args,
               **kwargs: P.kwargs) -> concurrent.futures.Future[T]:
        future = super().submit(fn, *args, **kwargs)
        with self._guard:
            self._running.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: concurrent.futures.Future[Any]) -> None:
        with self._guard:
            self._running.discard(future)

    def drain(self, timeout: float | None = None) -> None:
        """Wait until everything submitted so far has finished (blocking: call in a thread)."""
        with self._guard:
            pending = list(self._running)
        concurrent.futures.wait(pending, timeout)


class Offload(Protocol):
    """Runs ``fn(*args)`` off the event loop, in one of the run's threads (the state's
    single writer thread, or the I/O pool), and gives back its result."""

    def __call__(self, fn: Callable[..., T], /, *args: object) -> Awaitable[T]: ...
