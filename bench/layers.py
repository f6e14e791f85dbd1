"""What each layer of a download costs: fetch a list of small files through more and more of
assetvault's own path, and print the wall and CPU seconds of the fetching alone.

    python bench/layers.py MODE URLS_FILE OUT_DIR

MODE, from least to most of the path (each adds to the one before):

- ``bare``: the floor: one httptools parser per connection, SHA-256, and the file written
  under a temporary name and renamed; no limits, retries, checks, journal or state.
- ``client``: assetvault's HTTP client (``Pool``: kept-alive connections, bounded waits,
  the response parsed into headers) with SHA-256 and an unnamed file linked into place.
- ``place``: ``client``, then the placement (journal line, then the file put as a new object).
- ``http``: ``place`` through ``Http.download`` (the run's limits, redirects, credentials).
- ``fetcher``: ``Fetcher.fetch``, as a run calls it (retries, resume decision, checks,
  placement), without the run around it (listing, planning, state, bag).

A whole run (``assetvault run``) adds the rest. On this machine wall and CPU times move
2-4x from hour to hour: compare modes within one interleaved series, or count instructions
(``valgrind --tool=callgrind``, deterministic; note that valgrind's CPU has no SHA
instructions, so SHA-256 costs ~28 instructions a byte there and should be taken out).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httptools
import uvloop

from assetvault.archive.journal import Journal, Placed
from assetvault.archive.placer import Placer
from assetvault.models import Item
from assetvault.net.client import Pool
from assetvault.net.http import Http
from assetvault.net.limits import Limits
from assetvault.net.origin import GuardedResolver
from assetvault.storage import LocalStorage
from assetvault.transfer.fetch import Fetcher, JobFetch

CONCURRENCY = 16
MODES = ("bare", "client", "place", "http", "fetcher")


class _Bare(asyncio.Protocol):
    """One connection, one request at a time, the body gathered whole."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[bytes] | None = None
        self.transport: asyncio.Transport | None = None
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))

    def on_message_begin(self) -> None:
        self.body = []

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.waiter is not None
        self.waiter.set_result(b"".join(self.body))

    async def get(self, target: bytes, host: bytes) -> bytes:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(b"GET %s HTTP/1.1\r\nHost: %s\r\nAccept-Encoding: identity\r\n\r\n"
                             % (target, host))
        return await self.waiter


async def _bare(urls: list[str], out: Path) -> None:
    loop = asyncio.get_running_loop()
    first = urlsplit(urls[0])
    host, port = first.hostname or "", first.port or 80
    todo = list(reversed(urls))
    (out / ".tmp").mkdir()
    count = 0

    async def worker() -> None:
        nonlocal count
        transport, conn = await loop.create_connection(_Bare, host, port)
        while todo:
            url = todo.pop()
            parts = urlsplit(url)
            body = await conn.get(parts.path.encode(), parts.netloc.encode())
            hashlib.sha256(body).hexdigest()
            count += 1
            temp = f"{out}/.tmp/{count}"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, body)
            os.close(fd)
            os.replace(temp, f"{out}/data/{parts.path.rsplit('/', 1)[1]}")
        transport.close()

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def _layered(mode: str, urls: list[str], out: Path) -> None:
    pool = Pool(GuardedResolver(), "assetvault-bench")
    storage = LocalStorage(out)
    journal = Journal(out / "journal")
    journal.open()
    placer = Placer(storage, journal)
    http = Http(None, Limits(), pool)
    with ThreadPoolExecutor(4) as executor:
        fetcher = Fetcher(http, placer, out / "partial", executor)
        job = JobFetch(3, 60.0, 1 << 40)
        todo = list(reversed(urls))
        identity = {"Accept-Encoding": "identity"}

        async def worker() -> None:
            while todo:
                url = todo.pop()
                name = url.rsplit("/", 1)[1]
                if mode == "fetcher":
                    await fetcher.fetch(Item(name, "bench", url, name), job, None)
                    continue
                if mode == "http":
                    async with http.download(url, headers=identity, credentials=None,
                                             timeout=60.0, allow_hosts=()) as resp:
                        body = bytes(resp.whole() or b"")
                else:
                    resp = await pool.get(url, identity, None, 60.0)
                    body = bytes(resp.whole() or b"")
                    resp.release()
                digest = hashlib.sha256(body).hexdigest()
                if mode == "client":
                    storage.put_new("data/" + name, body)
                else:
                    placer.place_bytes(body, Placed(name, "bench", url, name, len(body),
                                                    digest, None, None, None), None, url)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    pool.close()
    journal.close()


def main() -> None:
    if len(sys.argv) != 4 or sys.argv[1] not in MODES:
        sys.exit(f"usage: layers.py {{{','.join(MODES)}}} URLS_FILE OUT_DIR")
    mode, urls = sys.argv[1], Path(sys.argv[2]).read_text().split()
    out = Path(sys.argv[3])
    (out / "data").mkdir(parents=True)
    (out / "partial").mkdir()
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    uvloop.run(_bare(urls, out) if mode == "bare" else _layered(mode, urls, out))
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    files = sum(1 for _ in os.scandir(out / "data"))
    print(f"{mode}: {files} files, {wall:.2f} s wall, "
          f"{after.ru_utime - before.ru_utime:.2f} user, "
          f"{after.ru_stime - before.ru_stime:.2f} system")


if __name__ == "__main__":
    main()
