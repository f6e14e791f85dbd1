"""What a running sandbox shares between its two listeners: dataset, faults and observations."""

from __future__ import annotations

import re
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiohttp import web

from .dataset import Dataset
from .faults import FaultPlan

__all__ = ["RequestLog", "SandboxState", "SlidingWindow"]

REQUEST_LOG_SIZE = 100_000
_API_KEY = re.compile(r"(^|&)(api_key=)[^&]*", re.IGNORECASE)
_SECRET_HEADERS = ("SPECTRUM_API_TOKEN", "Authorization")
_PLAIN_HEADERS = ("Range", "If-Range", "X-TASTEVIN-VERSION")


class RequestLog(NamedTuple):
    """One request as seen by the sandbox; secrets show only as ``***``."""

    time: float
    method: str
    port: int
    path: str
    query: str
    headers: dict[str, str]


class SlidingWindow:
    """Spectrum's limit: at most ``limit`` admitted requests per ``window`` seconds per key.

    Refused requests are not counted, so a client that backs off gets through again as soon as
    the oldest admitted request leaves the window.
    """

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._admitted: dict[str, deque[float]] = {}

    def admit(self, key: str, now: float) -> bool:
        if self.limit <= 0:
            return True
        times = self._admitted.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True


PAGE_CACHE_BYTES = 1 << 30


class PageCache:
    """Serialised pages, by what determines them, up to a byte budget.

    A real API answers a listing from an index; generating a page of a thousand records in
    Python took longer than the client took to plan it, so re-runs measured the sandbox.
    """

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._used = 0
        self._pages: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> bytes | None:
        found = self._pages.get(key)
        if found is not None:
            self._pages.move_to_end(key)
        return found

    def put(self, key: tuple[Any, ...], body: bytes) -> None:
        self._pages[key] = body
        self._used += len(body)
        while self._used > self._budget and self._pages:
            _, old = self._pages.popitem(last=False)
            self._used -= len(old)


@dataclass
class SandboxState:
    dataset: Dataset
    faults: FaultPlan
    counts: Counter[str] = field(default_factory=Counter)
    requests: deque[RequestLog] = field(default_factory=lambda: deque(maxlen=REQUEST_LOG_SIZE))
    api_url: str = ""
    files_url: str = ""
    limiter: SlidingWindow = field(init=False)
    # A listing of 125,000 records is ~290 MB of pages: with a smaller budget a re-run read
    # them in the order that LRU evicts them, and measured the sandbox regenerating each.
    pages: PageCache = field(default_factory=lambda: PageCache(PAGE_CACHE_BYTES))

    def __post_init__(self) -> None:
        cfg = self.dataset.config
        self.limiter = SlidingWindow(cfg.spectrum_limit, cfg.spectrum_window)

    def observe(self, request: web.BaseRequest) -> None:
        self.counts[request.path] += 1
        self.requests.append(RequestLog(
            time.monotonic(), request.method, _port(request), request.path,
            _API_KEY.sub(r"\1\2***", request.query_string), _selected_headers(request)))

    def reset_counts(self) -> None:
        self.counts.clear()
        self.requests.clear()


def _port(request: web.BaseRequest) -> int:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return int(sockname[1]) if sockname else 0


def _selected_headers(request: web.BaseRequest) -> dict[str, str]:
    headers = {name: request.headers[name] for name in _PLAIN_HEADERS if name in request.headers}
    headers.update({name: "***" for name in _SECRET_HEADERS if name in request.headers})
    return headers
