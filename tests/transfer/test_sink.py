"""The sink's flushes: in order, one in flight, and never dropped by a cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from assetvault.net.client import Pool
from assetvault.net.origin import GuardedResolver
from assetvault.transfer.sink import Sink

from ..net.test_client import Server

MIB = 1 << 20


def _chunks(n: int) -> list[bytes]:
    return [bytes([i]) * (MIB // 2) for i in range(n)]


def test_bytes_reach_file_and_hash_in_order(tmp_path: Path) -> None:
    chunks = _chunks(9)

    async def main() -> None:
        with ThreadPoolExecutor(4) as pool:
            sink = Sink(tmp_path / "f.part", pool, want_md5=True)
            await sink.start(0)
            for chunk in chunks:
                await sink.write(chunk)
            digests = await sink.finish()
        body = b"".join(chunks)
        assert (tmp_path / "f.part").read_bytes() == body
        assert digests.sha256 == hashlib.sha256(body).hexdigest()
        assert digests.md5 == hashlib.md5(body).hexdigest()
        assert digests.size == len(body)

    asyncio.run(main())


def test_cancelled_download_leaves_no_hole(tmp_path: Path) -> None:
    """With one flush in flight while the next megabyte is gathered, a cancelled waiter must
    not drop a queued flush (the later ones would land after a gap): the partial file is a
    prefix of the bytes sent, the base a resume hashes and continues, and has them all."""
    gate = threading.Event()
    chunks = _chunks(8)

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            sink = Sink(tmp_path / "f.part", pool, want_md5=False)
            await sink.start(0)
            pool.submit(gate.wait)  # the one thread is busy: the next flushes are queued

            async def download() -> None:
                try:
                    for chunk in chunks:
                        await sink.write(chunk)
                except BaseException:
                    await sink.abandon()
                    raise

            task = asyncio.create_task(download())
            await asyncio.sleep(0.05)  # blocked behind the second flush, the first queued
            task.cancel()
            await asyncio.sleep(0.05)
            gate.set()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        data = (tmp_path / "f.part").read_bytes()
        assert data == b"".join(chunks)[:len(data)]
        assert len(data) == 2 * MIB  # both flushes handed over are there

    asyncio.run(main())


def test_received_blocks_are_written_then_received_into_again_bytes_intact(
        tmp_path: Path) -> None:
    """Whole blocks come back once hashed and written, and the next bodies are received
    into them: every file still holds exactly its body (none of the last one's bytes)."""
    bodies = [os.urandom(8 * MIB + 1000 * n) for n in range(4)]  # no block like another

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(bodies[n]))
        w.write(bodies[n])  # as fast as it goes: the client receives ahead of the sink

    async def download(pool: Pool, executor: ThreadPoolExecutor, url: str,
                       path: Path, seen: list[object]) -> str:
        resp = await pool.get(url, {}, None, 5)
        sink = Sink(path, executor, want_md5=False)
        await sink.start(0)
        async for chunk in resp.chunks():
            seen.append(chunk)  # held: ids of live objects differ unless reused
            await sink.write(chunk)
        resp.release()
        return (await sink.finish()).sha256

    async def main() -> None:
        async with Server(script) as server:
            pool = Pool(GuardedResolver(), "t")
            firsts: list[object] = []
            with ThreadPoolExecutor(4) as executor:
                for n, body in enumerate(bodies):
                    seen: list[object] = []
                    sha = await download(pool, executor, f"{server.url}/{n}",
                                         tmp_path / f"{n}.part", seen)
                    assert (tmp_path / f"{n}.part").read_bytes() == body
                    assert sha == hashlib.sha256(body).hexdigest()
                    firsts += seen
            pool.close()
        assert len({id(c) for c in firsts}) < len(firsts), "no block was received into twice"

    asyncio.run(main())
