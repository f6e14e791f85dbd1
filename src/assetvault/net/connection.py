"""One kept-alive HTTP/1.1 connection of the download client and the response it is
receiving: llhttp (through httptools) parses the head and any body sent chunked or up to the
connection's end; the rest of a body of known length is read straight into blocks.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from typing import cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from .blocks import BLOCK, BLOCKS

MAX_HEAD = 64 * 1024  # bytes of status line and headers; aiohttp allows 8 KiB a line
MAX_FIELDS = 256
SCRATCH = 64 * 1024  # the head, and bodies of unknown length, are read through this
FLUSH = 0.25  # seconds a partly filled block waits before its bytes are handed over
HEAD_WAIT = 2  # x timeout: how long a response's head may take, trickled or not
HIGH_WATER = 4 << 20  # body bytes waiting to be taken before the socket is paused
Chunk = bytes | bytearray | memoryview  # a piece of a body: a whole block is a bytearray
Key = tuple[str, str, int]  # (scheme, host, port)
_REUSABLE_EMPTY = frozenset({204, 304})


class WireError(Exception):
    """The connection or the response broke (reset, truncated, malformed, too slow): the
    caller retries, as for any network error."""


class Response:
    """One response: status and headers at once, the body as it arrives."""

    def __init__(self, conn: Connection, url: str, status: int, reason: str,
                 headers: CIMultiDictProxy[str], content_length: int | None) -> None:
        self.url = url
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content_length = content_length
        self._conn = conn

    async def chunks(self) -> AsyncIterator[Chunk]:
        """The body's bytes as they are handed over (whole blocks, or what a slow server sent
        in the last quarter second); WireError if it breaks off."""
        conn = self._conn
        while True:
            chunk = conn.take()
            if chunk is not None:
                yield chunk
            elif conn.finished:
                return
            else:
                await conn.wait()

    def whole(self) -> Chunk | None:
        """The body, if all of it has already arrived in one piece (most small files: the
        head and body come in one read); else None, and :meth:`chunks` reads it."""
        return self._conn.take_whole()

    def release(self) -> None:
        """Done with the response: its connection is kept for the next request when the body
        was read to its end, else closed."""
        self._conn.release()


class Connection(asyncio.BufferedProtocol):
    """One connection and the response it is receiving (llhttp calls the ``on_*`` methods).

    The head, and any body sent chunked or up to the connection's end, are read into one
    scratch buffer and parsed. The rest of a body of known length is read straight into
    blocks of up to a megabyte that are then handed over whole, never copied: the sink
    hashes and writes each in one call (it was a copy per read and a hash per 64 KiB).
    """

    def __init__(self, key: Key, on_idle: Callable[[Connection], None],
                 on_lost: Callable[[Connection], None]) -> None:
        """``on_idle`` takes the connection back once a response was read to its end;
        ``on_lost`` hears that a connection so kept was closed."""
        self.key = key
        self.idle_since = 0.0
        self.answered = False  # a byte of the current response arrived
        self.dropped = False  # the server closed it before the current response's first byte
        self.finished = False  # the current body is complete, or broke off (``_error``)
        self._on_idle = on_idle
        self._on_lost = on_lost
        self._parser = httptools.HttpResponseParser(self)
        self._scratch = memoryview(bytearray(SCRATCH))
        self._left = 0  # body bytes still to come straight into blocks (0: the parser reads)
        self._block: bytearray | None = None
        self._filled = 0
        self._sent = 0  # bytes of the block already handed over
        self._flush: asyncio.TimerHandle | None = None
        self._seen = 0  # body bytes the parser gave of the current response
        self._length: int | None = None
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._head_ready: asyncio.Future[Response] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._body: collections.deque[Chunk] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._error: WireError | None = None
        self._fields: list[tuple[str, str]] = []
        self._reason = ""
        self._head_bytes = 0
        self._url = ""
        self._until_eof = False
        self._complete = False
        self._idle_timeout = 0.0
        self._last = 0.0
        self._head_due = 0.0
        self._dirty = False  # bytes came past the end of a response
        self._keep_alive = False
        self._timer: asyncio.TimerHandle | None = None

    @property
    def reusable(self) -> bool:
        return (self._transport is not None and not self._transport.is_closing()
                and not self._dirty)

    # the request --------------------------------------------------------------------------

    async def request(self, head: bytes, url: str, timeout: float) -> Response:
        assert self._transport is not None
        self._reset(url, timeout)
        self._head_ready = self._loop.create_future()
        # One timer bounds the head (``timeout`` without a byte, and HEAD_WAIT x timeout in
        # all however it trickles) and then the body's idle time; no timeout context per
        # request.
        self._head_due = self._last = self._loop.time()
        self._head_due += HEAD_WAIT * timeout
        self._timer = self._loop.call_at(self._head_due, self._check_idle)
        self._transport.write(head)
        try:
            return await self._head_ready
        except BaseException:
            self.close()
            raise

    def _reset(self, url: str, timeout: float) -> None:
        # A fresh parser: one that handed a body over to the blocks stopped inside it.
        self._parser = httptools.HttpResponseParser(self)
        self._seen, self._length = 0, None
        self.answered = self.finished = self._complete = self._until_eof = False
        self.dropped = False
        self.idle_since = 0.0
        self._keep_alive = False
        self._error = None
        self._fields, self._reason, self._head_bytes, self._url = [], "", 0, url
        self._idle_timeout = timeout

    def take(self) -> Chunk | None:
        if self._body:
            chunk = self._body.popleft()
            self._buffered -= len(chunk)
            if self._paused and self._buffered < HIGH_WATER // 2 and self._transport:
                self._paused = False
                self._transport.resume_reading()
            return chunk
        if self._error is not None:
            raise self._error
        return None

    def take_whole(self) -> Chunk | None:
        """The whole body, when the response is complete and its body is one piece."""
        if self.finished and self._error is None and len(self._body) == 1:
            return self.take()
        return None

    async def wait(self) -> None:
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def release(self) -> None:
        self._stop_timer()
        # Complete means no error: a failure finishes a response first, and nothing after.
        if self._complete and self._keep_alive and not self._body and self.reusable:
            self._on_idle(self)
        else:
            self.close()

    def close(self) -> None:
        self._stop_timer()
        if self._transport is not None:
            self._transport.abort()
            self._transport = None

    # asyncio ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def get_buffer(self, sizehint: int) -> memoryview:
        if not self._left:
            return self._scratch
        if self._block is None:
            self._block, self._filled, self._sent = BLOCKS.take(min(self._left, BLOCK)), 0, 0
        return memoryview(self._block)[self._filled:]

    def buffer_updated(self, nbytes: int) -> None:
        if not self._left:
            self._feed(self._scratch[:nbytes])
            return
        assert self._block is not None
        self._last = self._loop.time()
        self._filled += nbytes
        self._left -= nbytes
        if self._filled == len(self._block):
            self._hand_over()
        elif self._flush is None:
            # A slow body still reaches its reader (and its least-speed check) every FLUSH
            # seconds; a fast one fills its block long before.
            self._flush = self._loop.call_later(FLUSH, self._hand_over)
        if not self._left:
            self._complete = True
            self._end()

    def _hand_over(self) -> None:
        """The block's bytes not yet handed over: the whole block when it is full and none
        were, else a view of the rest (the block is never written again below ``_filled``)."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        block = self._block
        if block is None or self._filled == self._sent:
            return
        if self._filled == len(block):
            self._block = None
            self._deliver(block if not self._sent else memoryview(block)[self._sent:])
            self._sent = 0
        else:
            self._deliver(memoryview(block)[self._sent:self._filled])
            self._sent = self._filled

    def _feed(self, data: memoryview) -> None:
        if self._head_ready is None or self.finished:
            # Bytes nobody asked for (after a response, or on an idle connection): the
            # stream can no longer be trusted to start where the next response does.
            self.close()
            return
        self.answered = True
        self._last = self._loop.time()
        if not self._head_ready.done():
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("the server switched protocols")
        except httptools.HttpParserError as exc:
            self._fail(f"malformed response: {exc}")
        if self._head_bytes > MAX_HEAD and not self._head_ready.done():
            self._fail(f"response head over {MAX_HEAD // 1024} KiB")
        elif self._length is not None and not self.finished and self._length > self._seen:
            self._left = self._length - self._seen  # the rest comes straight into blocks

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self.idle_since:
            self._on_lost(self)  # a kept connection the server closed: out of the pool
        if self._head_ready is None or self.finished:
            return
        self.dropped = not self.answered
        if self._until_eof and self._head_ready.done() and exc is None:
            self._end()  # a body without length or chunks ends with its connection's close
            return
        # A reset is never that end: the body broke off.
        self._fail("the connection closed before the response was complete")

    # llhttp -------------------------------------------------------------------------------
    # After a response is complete the parser reads on into whatever follows it: those bytes
    # are no part of it (a chunked body has no length to catch them), and the connection is
    # not reused.

    def on_message_begin(self) -> None:
        if self.finished:
            self._dirty = True

    def on_status(self, reason: bytes) -> None:
        if not self.finished:
            self._reason += reason.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.finished:
            return
        self._fields.append((name.decode("latin-1"), value.decode("latin-1")))
        if len(self._fields) > MAX_FIELDS:
            self._fail(f"more than {MAX_FIELDS} header fields")

    def on_headers_complete(self) -> None:
        if self.finished:
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            self._fields, self._reason = [], ""  # an interim answer: the real one follows
            return
        headers = CIMultiDictProxy(CIMultiDict(self._fields))
        # Every Transfer-Encoding field counts (llhttp reads "gzip" then "chunked" as chunked);
        # a body read up to the close is only one that names no length and no coding.
        codings = headers.getall("Transfer-Encoding", [])
        chunked = "chunked" in ",".join(codings).lower()
        self._length = None if chunked else _length(headers)
        self._until_eof = (self._length is None and not codings
                           and status not in _REUSABLE_EMPTY)
        # Asked now: the parser may not see this message's end (see get_buffer).
        self._keep_alive = self._parser.should_keep_alive()
        response = Response(self, self._url, status, self._reason.strip(), headers,
                             self._length)
        assert self._head_ready is not None
        if not self._head_ready.done():
            self._head_ready.set_result(response)

    def on_body(self, body: bytes) -> None:
        if not self.finished:
            self._seen += len(body)
            self._deliver(body)

    def _deliver(self, body: Chunk) -> None:
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered >= HIGH_WATER and not self._paused and self._transport:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.finished and self._parser.get_status_code() >= 200:
            self._complete = True
            self._end()

    # ends ---------------------------------------------------------------------------------

    def _end(self) -> None:
        self.finished = True
        self._stop_timer()
        self._wake()

    def _fail(self, reason: str) -> None:
        if self.finished:
            return
        self._hand_over()  # what came, before the error
        self._block, self._left = None, 0
        self._error = WireError(reason)
        if self._head_ready is not None and not self._head_ready.done():
            self._head_ready.set_exception(self._error)
        self._end()
        self.close()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _check_idle(self) -> None:
        # One timer per response, moved on lazily: a byte costs a clock read, not a timer.
        self._timer = None
        now = self._loop.time()
        if self._paused:
            self._last = now  # we are the slow side, not the server
        head = self._head_ready is not None and not self._head_ready.done()
        idle_due = self._last + self._idle_timeout
        due = min(self._head_due, idle_due) if head else idle_due
        if now < due:
            self._timer = self._loop.call_at(due, self._check_idle)
        elif head and not self.answered:
            self._fail(f"no response within {self._idle_timeout:g} s")
        elif head and now < idle_due:
            self._fail(f"the response's head took over {HEAD_WAIT * self._idle_timeout:g} s")
        else:
            self._fail(f"no data for {self._idle_timeout:g} s")

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None


def _length(headers: CIMultiDictProxy[str]) -> int | None:
    values = headers.getall("Content-Length", [])
    if not values:
        return None
    # llhttp has refused a list of different lengths; equal repeats are one length.
    value = values[0].split(",")[0].strip()
    return int(value) if value.isdigit() else None
