"""Running the sandbox: in the caller's event loop, in a background thread, or until cancelled."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter, deque
from collections.abc import Callable
from types import TracebackType

from aiohttp import web

from .app import make_app
from .config import DatasetConfig
from .dataset import Dataset
from .faults import FaultPlan
from .state import RequestLog, SandboxState

__all__ = ["Sandbox", "SandboxThread", "serve"]

HOST = "127.0.0.1"
# Handlers stalled by a fault must not hold up shutdown for aiohttp's default minute.
_SHUTDOWN_TIMEOUT = 0.5
_THREAD_TIMEOUT = 30.0


def _plan(faults: FaultPlan | str | None, seed: int) -> FaultPlan:
    return faults if isinstance(faults, FaultPlan) else FaultPlan.parse(faults, seed)


class Sandbox:
    """Both APIs on ``api_url`` and every file on ``files_url`` (also on ``api_url``), on 127.0.0.1.

    Use as ``async with Sandbox(config) as sb:``; ports 0 pick free ports.
    """

    def __init__(self, config: DatasetConfig | None = None, *,
                 faults: FaultPlan | str | None = None, api_port: int = 0,
                 files_port: int = 0) -> None:
        self.config = config or DatasetConfig()
        self.dataset = Dataset(self.config)
        self.faults = _plan(faults, self.config.seed)
        self._state = SandboxState(self.dataset, self.faults)
        self._ports = (api_port, files_port)
        self._runners: list[web.AppRunner] = []

    @property
    def api_url(self) -> str:
        return self._state.api_url

    @property
    def files_url(self) -> str:
        return self._state.files_url

    @property
    def counts(self) -> Counter[str]:
        """Requests per path (no query), every route but ``/_sandbox/``, both ports."""
        return self._state.counts

    @property
    def requests(self) -> deque[RequestLog]:
        """The last 100,000 requests, secrets masked."""
        return self._state.requests

    def reset_counts(self) -> None:
        self._state.reset_counts()

    def set_faults(self, faults: FaultPlan | str | None) -> None:
        """Swap the fault rules of a running sandbox (fresh trigger counters)."""
        self.faults = _plan(faults, self.config.seed)
        self._state.faults = self.faults

    async def start(self) -> None:
        try:
            self._state.api_url = await self._listen(make_app(self._state, apis=True),
                                                     self._ports[0])
            self._state.files_url = await self._listen(make_app(self._state, apis=False),
                                                       self._ports[1])
        except BaseException:
            await self.stop()
            raise

    async def _listen(self, app: web.Application, port: int) -> str:
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, HOST, port).start()
        return f"http://{HOST}:{runner.addresses[0][1]}"

    async def stop(self) -> None:
        runners, self._runners = self._runners, []
        for runner in reversed(runners):
            await runner.cleanup()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()


class SandboxThread:
    """A :class:`Sandbox` in a daemon thread with its own event loop, for synchronous callers."""

    def __init__(self, config: DatasetConfig | None = None, *,
                 faults: FaultPlan | str | None = None, api_port: int = 0,
                 files_port: int = 0) -> None:
        self.sandbox = Sandbox(config, faults=faults, api_port=api_port, files_port=files_port)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def api_url(self) -> str:
        return self.sandbox.api_url

    @property
    def files_url(self) -> str:
        return self.sandbox.files_url

    @property
    def dataset(self) -> Dataset:
        return self.sandbox.dataset

    @property
    def counts(self) -> Counter[str]:
        return self.sandbox.counts

    @property
    def requests(self) -> deque[RequestLog]:
        return self.sandbox.requests

    def start(self) -> SandboxThread:
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),),
                                        name="assetvault-sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(_THREAD_TIMEOUT):
            raise RuntimeError("the sandbox thread did not start in time")
        if self._error is not None:
            raise self._error
        return self

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            await self.sandbox.start()
        except BaseException as exc:
            self._error = exc
            return
        finally:
            self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await self.sandbox.stop()

    def set_faults(self, faults: FaultPlan | str | None) -> None:
        """Swap the fault rules; takes effect from the next request."""
        self.sandbox.set_faults(faults)

    def reset_counts(self) -> None:
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            self.sandbox.reset_counts()
            return
        done = asyncio.run_coroutine_threadsafe(self._reset(), self._loop)
        done.result(_THREAD_TIMEOUT)

    async def _reset(self) -> None:
        self.sandbox.reset_counts()

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None and self._thread is not None:
            if self._thread.is_alive():
                self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(_THREAD_TIMEOUT)

    def __enter__(self) -> SandboxThread:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


async def serve(config: DatasetConfig, *, port: int, faults: str | None,
                ready: Callable[[str, str], None] | None = None) -> None:
    """Serve until cancelled: APIs on ``port``, files on ``port + 1`` (port 0: both ephemeral)."""
    files_port = port + 1 if port else 0
    async with Sandbox(config, faults=faults, api_port=port, files_port=files_port) as sandbox:
        if ready is not None:
            ready(sandbox.api_url, sandbox.files_url)
        await asyncio.Event().wait()
