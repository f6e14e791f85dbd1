"""The part of Dask distributed's ``Client`` a run uses, in asynchronous mode, with the types
its methods have there (the library annotates their synchronous face: ``wait_for_workers``
"returns None", where an asynchronous client hands back a coroutine)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import cast

from distributed import Client, Future, WorkerPlugin

CALL_WITHIN = 60.0  # seconds for any one request to the cluster: nothing waits forever on it


class DaskClient:
    """An asynchronous ``distributed.Client``; every request is bounded (TimeoutError)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @property
    def client_id(self) -> str:
        """The id the scheduler knows this client by (in its ``clients`` while connected)."""
        return str(self.client.id)

    async def wait_for_workers(self, count: int, timeout: float) -> None:
        await cast(Awaitable[None], self.client.wait_for_workers(count, timeout=timeout))

    async def run(self, fn: Callable[..., object], *args: object,
                  workers: Sequence[str] | None = None) -> dict[str, object]:
        """``fn(*args)`` on every worker (or those named): each one's result or exception."""
        return await asyncio.wait_for(cast(
            Awaitable[dict[str, object]],
            self.client.run(fn, *args, workers=list(workers) if workers else None,
                            on_error="return")), CALL_WITHIN)

    async def run_on_scheduler(self, fn: Callable[..., object], *args: object) -> object:
        asked = self.client.run_on_scheduler(fn, *args)  # type: ignore[no-untyped-call]
        return await asyncio.wait_for(cast(Awaitable[object], asked), CALL_WITHIN)

    async def register_plugin(self, plugin: WorkerPlugin) -> None:
        await asyncio.wait_for(cast(Awaitable[object], self.client.register_plugin(plugin)),
                               CALL_WITHIN)

    async def unregister_plugin(self, name: str) -> None:
        await cast(Awaitable[object], self.client.unregister_worker_plugin(name))  # type: ignore[no-untyped-call]

    def submit(self, fn: Callable[..., object], *args: object, key: str,
               workers: Sequence[str] | None = None) -> Future[object]:
        """``fn(*args)`` as a task, on one of ``workers`` when they are named."""
        return cast("Future[object]", self.client.submit(
            fn, *args, key=key, pure=False, workers=list(workers) if workers else None,
            allow_other_workers=False))

    async def cancel(self, futures: list[Future[object]]) -> None:
        await cast(Awaitable[None], self.client.cancel(futures))  # type: ignore[no-untyped-call]

    def subscribe(self, topic: str, handler: Callable[[tuple[float, object]], None]) -> None:
        self.client.subscribe_topic(topic, handler)  # type: ignore[no-untyped-call]

    def unsubscribe(self, topic: str) -> None:
        self.client.unsubscribe_topic(topic)  # type: ignore[no-untyped-call]

    async def workers(self) -> frozenset[str]:
        """The workers the scheduler knows now (asking it: also a sign of life)."""
        scheduler = self.client.scheduler
        assert scheduler is not None
        info = await cast(Awaitable[dict[str, object]], scheduler.identity())
        found = info.get("workers")
        return frozenset(found) if isinstance(found, dict) else frozenset()

    async def close(self) -> None:
        await cast(Awaitable[None], self.client.close())  # type: ignore[no-untyped-call]
