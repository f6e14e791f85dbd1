"""Streaming a body, honest or broken: the one place where body faults act."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Iterable, Mapping

from aiohttp import web

from .faults import FaultRule

__all__ = ["send", "send_json_bytes"]

_JSON_CHUNK = 65_536
_SLOW_TICK = 0.05


async def send(request: web.Request, status: int, headers: Mapping[str, str], length: int,
               chunks: Iterable[bytes], fault: FaultRule | None = None) -> web.StreamResponse:
    """Send ``length`` bytes from ``chunks`` under an exact Content-Length, unless ``fault``."""
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = length
    try:
        await response.prepare(request)  # a client gone already fails here (its headers)
        if request.method == "HEAD" or length == 0:
            await response.write_eof()
            return response
        if fault is None:
            for chunk in chunks:
                await response.write(chunk)
        else:
            await _send_faulty(request, response, length, chunks, fault)
            return response
        await response.write_eof()
    except ConnectionError:
        pass  # The client went away; nothing is left to tell it.
    return response


async def send_json_bytes(request: web.Request, status: int, body: bytes,
                          fault: FaultRule | None = None,
                          headers: Mapping[str, str] | None = None) -> web.StreamResponse:
    pieces = (body[i:i + _JSON_CHUNK] for i in range(0, len(body), _JSON_CHUNK))
    all_headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    return await send(request, status, all_headers, len(body), pieces, fault)


async def _send_faulty(request: web.Request, response: web.StreamResponse, length: int,
                       chunks: Iterable[bytes], fault: FaultRule) -> None:
    if fault.kind in ("slow", "trickle"):
        # trickle: one byte every SECONDS, for ever if the client lets it (no run may hang).
        rate = fault.rate if fault.kind == "slow" else 1 / max(fault.seconds, 1e-3)
        await _drip(response, chunks, rate)
        await response.write_eof()
        return
    cut = min(length - 1, int(length * fault.fraction)) if fault.kind != "stall" else int(
        length * fault.fraction)
    rest = await _write_upto(response, chunks, cut)
    if fault.kind == "stall":
        await asyncio.sleep(fault.seconds)
        await response.write(rest)
        for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
    elif fault.kind == "truncate":
        _close(request, abort=False)
    else:
        _close(request, abort=True)


async def _write_upto(response: web.StreamResponse, chunks: Iterable[bytes], cut: int) -> bytes:
    """Write the first ``cut`` bytes; return what was taken from ``chunks`` beyond them."""
    sent = 0
    for chunk in chunks:
        if sent + len(chunk) >= cut:
            await response.write(chunk[:cut - sent])
            return chunk[cut - sent:]
        await response.write(chunk)
        sent += len(chunk)
    return b""


async def _drip(response: web.StreamResponse, chunks: Iterable[bytes], rate: float) -> None:
    step = max(1, int(rate * _SLOW_TICK))
    start = time.monotonic()
    sent = 0
    for chunk in chunks:
        for i in range(0, len(chunk), step):
            piece = chunk[i:i + step]
            await response.write(piece)
            sent += len(piece)
            delay = start + sent / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)


def _close(request: web.Request, *, abort: bool) -> None:
    transport = request.transport
    if transport is None:
        return
    if abort:
        # SO_LINGER 0 turns the close into a TCP RST, which is what a reset peer looks like.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()
