"""The download path's HTTP/1.1 client against a raw loopback server that says exactly what
each test scripts: kept connections, what ends a body, and what must never become one."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from assetvault.net import client
from assetvault.net.client import Pool, Response, WireError, _target_by_yarl, target_of
from assetvault.net.origin import GuardedResolver

from ..certs import certificates

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]
WAIT = 10.0


class Server:
    """Counts connections; ``script(reader, writer, n)`` answers the n-th request (from 0)."""

    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.connections = 0
        self.requests: list[bytes] = []
        self.url = ""

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                await self.script(reader, writer, len(self.requests) - 1)
                await writer.drain()
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            writer.close()


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, WAIT))


async def body(resp: Response) -> bytes:
    parts = [chunk async for chunk in resp.chunks()]
    return b"".join(parts)


async def get(pool: Pool, url: str, timeout: float = 5.0) -> tuple[Response, bytes]:
    resp = await pool.get(url, {"Accept-Encoding": "identity"}, None, timeout)
    try:
        return resp, await body(resp)
    finally:
        resp.release()


def cut_body(script: Script) -> bytes:
    """What a response ``script`` sends delivered before its body broke off (the break is
    asserted)."""
    got: list[bytes] = []

    async def main() -> None:
        async with Server(script) as server:
            pool = Pool(GuardedResolver(), "t")
            resp = await pool.get(server.url + "/cut", {}, None, 5)
            with pytest.raises(WireError, match="closed before the response was complete"):
                async for chunk in resp.chunks():
                    got.append(bytes(chunk))
            resp.release()
            pool.close()

    run(main())
    return b"".join(got)


def ok(payload: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(payload), extra, payload)


def test_one_connection_carries_request_after_request() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(ok(b"file %d" % n, b"ETag: \"e\"\r\n"))

    async def main() -> None:
        async with Server(script) as server:
            pool = Pool(GuardedResolver(), "assetvault-test")
            for n in range(3):
                resp, data = await get(pool, f"{server.url}/f{n}?x=1")
                assert (resp.status, data, resp.headers["etag"]) == (200, b"file %d" % n, '"e"')
                assert resp.content_length == len(data)
            pool.close()
        assert server.connections == 1
        assert server.requests[2].startswith(b"GET /f2?x=1 HTTP/1.1\r\n")
        assert b"\r\nUser-Agent: assetvault-test\r\n" in server.requests[0]
        assert b"\r\nAccept-Encoding: identity\r\n" in server.requests[0]

    run(main())


def test_a_kept_connection_the_server_closed_is_replaced_without_an_error() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        if n == 1:
            w.close()  # its keep-alive ended just as the second request went out
            return
        w.write(ok(b"x%d" % n))

    async def main() -> None:
        async with Server(script) as server:
            pool = Pool(GuardedResolver(), "t")
            await get(pool, server.url + "/a")
            _, data = await get(pool, server.url + "/b")
            assert data == b"x2"  # the third request the server saw, on a new connection
            pool.close()
        assert server.connections == 2

    run(main())


def test_bytes_past_a_chunked_body_are_not_part_of_it_and_end_the_connection() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n0\r\n\r\n"
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL")

    async def main() -> None:
        async with Server(script) as server:
            pool = Pool(GuardedResolver(), "t")
            resp, data = await get(pool, server.url + "/c")
            assert (data, resp.content_length) == (b"hello", None)
            await get(pool, server.url + "/d")
            pool.close()
        assert server.connections == 2

    run(main())


def test_a_body_cut_short_of_its_length_is_an_error_after_the_bytes_that_came() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"a" * 40)
        await w.drain()
        w.close()

    assert cut_body(script) == b"a" * 40


def test_a_body_without_length_ends_with_its_connection() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
        await w.drain()
        w.close()

    async def main() -> None:
        async with Server(script) as server:
            pool = Pool(GuardedResolver(), "t")
            resp, data = await get(pool, server.url + "/e")
            assert (data, resp.content_length) == (b"until the end", None)
            pool.close()

    run(main())


def test_an_interim_answer_is_skipped_for_the_real_one() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + ok(b"real"))

    async def main() -> None:
        async with Server(script) as server:
            pool = Pool(GuardedResolver(), "t")
            resp, data = await get(pool, server.url + "/i")
            assert (resp.status, resp.reason, data) == (200, "OK", b"real")
            assert "Link" not in resp.headers
            pool.close()

    run(main())


@pytest.mark.parametrize(("lines", "size", "refusal"), [
    (20, 4096, "head over 64 KiB"), (300, 8, "more than 256 header fields")])
def test_an_endless_head_is_refused(lines: int, size: int, refusal: str) -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(lines):
            w.write(b"X-Filler-%05d: %s\r\n" % (i, b"f" * size))
            await w.drain()

    async def main() -> None:
        async with Server(script) as server:
            pool = Pool(GuardedResolver(), "t")
            with pytest.raises(WireError, match=refusal):
                await pool.get(server.url + "/h", {}, None, 5)
            pool.close()

    run(main())


def test_a_body_that_stops_arriving_times_out() -> None:
    held = asyncio.Event()

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await w.drain()
        await held.wait()  # never set: the rest never comes

    async def main() -> None:
        async with Server(script) as server:
            pool = Pool(GuardedResolver(), "t")
            resp = await pool.get(server.url + "/s", {}, None, 0.3)
            with pytest.raises(WireError, match=r"no data for 0\.3 s"):
                await body(resp)
            resp.release()
            pool.close()
            held.set()

    run(main())


def test_a_line_break_in_a_header_never_reaches_the_wire() -> None:
    async def main() -> None:
        pool = Pool(GuardedResolver(), "t")
        with pytest.raises(ValueError, match="line break"):
            await pool.get("http://127.0.0.1:9/x", {"X-A": "1\r\nX-Injected: 2"}, None, 5)

    run(main())


def test_a_refused_connection_is_a_wire_error() -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        pool = Pool(GuardedResolver(), "t")
        with pytest.raises(WireError, match=f"cannot connect to 127.0.0.1:{port}"):
            await pool.get(f"http://127.0.0.1:{port}/x", {}, None, 5)

    run(main())


def test_tls_is_verified_against_the_trusted_authorities(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ca, cert, key = certificates(tmp_path / "tls", ip="127.0.0.1")
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(ok(b"over tls"))

    async def fetch() -> bytes:
        async with Server(script, tls=served) as server:
            pool = Pool(GuardedResolver(), "t")
            try:
                return (await get(pool, server.url.replace("http:", "https:") + "/t"))[1]
            finally:
                pool.close()

    async def refused() -> None:
        with pytest.raises(WireError, match=r"TLS certificate of 127\.0\.0\.1 was refused"):
            await fetch()

    run(refused())  # an authority this machine does not trust
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))

    async def trusted() -> None:
        assert await fetch() == b"over tls"

    run(trusted())


def test_a_long_body_comes_whole_in_blocks_and_the_connection_serves_again() -> None:
    payload = bytes(range(256)) * (3 * 4096 + 1)  # 3 MiB and 256 bytes

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        if n == 1:
            w.write(ok(b"next"))
            return
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload))
        for at in range(0, len(payload), 100_000):  # pieces that straddle the blocks
            w.write(payload[at:at + 100_000])
            await w.drain()

    async def main() -> None:
        async with Server(script) as server:
            pool = Pool(GuardedResolver(), "t")
            resp = await pool.get(server.url + "/big", {}, None, 5)
            pieces = [chunk async for chunk in resp.chunks()]
            resp.release()
            assert b"".join(pieces) == payload
            assert max(len(p) for p in pieces) <= 1 << 20
            assert sum(len(p) == 1 << 20 for p in pieces) >= 2  # whole blocks, not reads
            _, data = await get(pool, server.url + "/next")
            assert data == b"next"
            pool.close()
        assert server.connections == 1

    run(main())


def test_a_long_body_cut_off_keeps_what_came_in_its_block() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (2 << 20))
        await w.drain()
        w.write(b"b" * 600_000)
        await w.drain()
        w.close()

    assert cut_body(script) == b"b" * 600_000


def test_a_slow_long_body_reaches_its_reader_before_its_block_fills() -> None:
    head_seen, seen = asyncio.Event(), asyncio.Event()

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (2 << 20))
        await w.drain()
        await head_seen.wait()  # so these bytes come straight into a block
        w.write(b"s" * 1000)
        await w.drain()
        await seen.wait()  # the rest only once the reader has had the first bytes
        w.write(b"s" * ((2 << 20) - 1000))

    async def main() -> None:
        async with Server(script) as server:
            pool = Pool(GuardedResolver(), "t")
            resp = await pool.get(server.url + "/slow", {}, None, 5)
            head_seen.set()
            total = 0
            async for chunk in resp.chunks():
                total += len(chunk)
                seen.set()
            resp.release()
            assert total == 2 << 20
            pool.close()

    run(main())


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:18080/small/s00001.bin", "https://cdn.example.com/a/b-c_d~e.png",
    "http://h.example:80/x?y=1&z=a:b", "https://h.example:8443", "http://h.example?q=/x",
    "http://h.example/a/./b", "http://h.example/a/../b", "http://H.Example/%7Euser/f%20g",
    "http://h.example/caf\u00e9?\u00e9=1", "http://u:p@h.example/x", "http://[::1]:9/p#frag"])
def test_a_plain_url_is_split_as_yarl_splits_it(url: str) -> None:
    assert target_of(url) == _target_by_yarl(url, None)._replace(text=target_of(url).text)


def test_a_head_that_trickles_is_bounded() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(1000):  # a header line every 50 ms: progress, but never a head
            w.write(b"X-%d: y\r\n" % i)
            await w.drain()
            await asyncio.sleep(0.05)  # the server's pace, not a wait for anything

    async def main() -> None:
        async with Server(script) as server:
            pool = Pool(GuardedResolver(), "t")
            with pytest.raises(WireError, match=r"head took over 0\.6 s"):
                await pool.get(server.url + "/h", {}, None, 0.3)
            pool.close()

    run(main())


def test_a_reset_is_never_the_end_of_a_body_without_length() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"r" * 1000)
        await w.drain()
        sock = w.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        w.transport.abort()  # RST, not FIN

    cut_body(script)


def test_a_chunked_body_named_among_other_codings_must_end_with_its_last_chunk() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked"
                b"\r\n\r\n5\r\nhello\r\n")
        await w.drain()
        w.close()  # a clean close before the last chunk

    cut_body(script)


def test_a_silent_server_is_not_asked_again_on_another_kept_connection() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        if n < 2:
            w.write(ok(b"x"))
        # later requests: no answer at all

    async def main() -> None:
        async with Server(script) as server:
            pool = Pool(GuardedResolver(), "t")
            first = await pool.get(server.url + "/a", {}, None, 5)  # two connections kept
            second = await pool.get(server.url + "/b", {}, None, 5)
            await body(first), await body(second)
            first.release(), second.release()
            with pytest.raises(WireError, match=r"no response within 0\.3 s"):
                await pool.get(server.url + "/c", {}, None, 0.3)
            pool.close()
        assert len(server.requests) == 3

    run(main())


def test_parked_connections_are_swept_past_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "MAX_IDLE", 4)
    monkeypatch.setattr(client, "KEEP", 2)

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        w.write(ok(b"x"))

    async def main() -> None:
        async with Server(script) as server:
            pool = Pool(GuardedResolver(), "t")
            answers = await asyncio.gather(*(pool.get(f"{server.url}/{i}", {}, None, 5)
                                             for i in range(6)))
            for resp in answers:
                await body(resp)
                resp.release()
            parked = [c for conns in pool._idle.values() for c in conns]
            assert 1 <= len(parked) <= 4 and all(c.reusable for c in parked)
            await get(pool, server.url + "/again")  # a parked one serves
            pool.close()
        assert server.connections == 6

    run(main())
