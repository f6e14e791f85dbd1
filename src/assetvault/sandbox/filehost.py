"""The file host: Azure-like blobs, a CDN and Rackspace, with Range, If-Range and checksums."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from datetime import UTC
from email.utils import format_datetime

from aiohttp import web

from .faults import NO_FAULT, Decision
from .files import FileSpec, etag_for, iter_chunks, md5_base64, md5_of
from .keys import DECISION, STATE
from .ranges import RangeNotSatisfiable, if_range_holds, parse_range
from .send import send

__all__ = ["METADATA_URL", "redirect", "serve_file"]

METADATA_URL = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"

# Hashing more than this blocks the loop for too long: do it in a worker thread.
_INLINE_MD5_BYTES = 4 * 1024 * 1024


async def serve_file(request: web.Request) -> web.StreamResponse:
    """GET/HEAD of a file path, on either port."""
    state = request.app[STATE]
    decision = request.get(DECISION, NO_FAULT)
    spec = state.dataset.file_spec(request.path, decision.variant)
    if spec is None:
        raise web.HTTPNotFound(text="Not Found")
    if decision.redirect is not None:
        # A loop back to this very URL, or a hop to the cloud metadata service.
        raise web.HTTPFound(location=str(request.rel_url) if decision.redirect ==
                            "redirect-loop" else METADATA_URL)
    md5 = await _md5_if_published(spec, decision)
    headers = _headers(spec, md5, decision)
    if decision.gzip:
        return await _send_gzip(request, spec, headers, decision)
    try:
        span = parse_range(request.headers.get("Range"), spec.size)
    except RangeNotSatisfiable:
        headers["Content-Range"] = f"bytes */{spec.size}"
        headers.pop("Content-MD5", None)
        body = b"Requested range not satisfiable"
        headers["Content-Type"] = "text/plain"
        return await send(request, 416, headers, len(body), [body])
    if span is not None and not decision.ignore_if_range and not if_range_holds(
            request.headers.get("If-Range"), headers["ETag"], spec.modified):
        span = None
    start, stop = span if span is not None else (0, spec.size)
    status = 200
    if span is not None:
        status = 206
        headers.pop("Content-MD5", None)  # It covers the whole blob, never a range.
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{spec.size}"
    return await send(request, status, headers, stop - start, iter_chunks(spec, start, stop),
                      decision.body)


async def _send_gzip(request: web.Request, spec: FileSpec, headers: dict[str, str],
                     decision: Decision) -> web.StreamResponse:
    """The whole file gzip-encoded although the client asked for identity; Range ignored.

    Checksums stay those of the file itself, as a misconfigured CDN would send them.
    """
    body = await asyncio.get_running_loop().run_in_executor(
        None, lambda: gzip.compress(b"".join(iter_chunks(spec, 0, spec.size)), mtime=0))
    headers["Content-Encoding"] = "gzip"
    return await send(request, 200, headers, len(body), [body], decision.body)


async def _md5_if_published(spec: FileSpec, decision: Decision) -> bytes | None:
    if not (spec.family == "rack" or spec.has_md5 or decision.badmd5):
        return None
    if spec.size <= _INLINE_MD5_BYTES:
        md5 = md5_of(spec)
    else:
        md5 = await asyncio.get_running_loop().run_in_executor(None, md5_of, spec)
    # A wrong checksum that is still well-formed: the MD5 of the MD5.
    return hashlib.md5(md5, usedforsecurity=False).digest() if decision.badmd5 else md5


def _headers(spec: FileSpec, md5: bytes | None, decision: Decision) -> dict[str, str]:
    headers = {
        "Content-Type": spec.content_type,
        "Accept-Ranges": "bytes",
        "ETag": etag_for(spec, md5),
        "Last-Modified": format_datetime(spec.modified.astimezone(UTC).replace(microsecond=0),
                                         usegmt=True),
    }
    if md5 is not None and spec.family != "rack":
        headers["Content-MD5"] = md5_base64(md5)
        if spec.family == "blob":
            headers["x-ms-blob-content-md5"] = md5_base64(md5)
    if spec.family == "blob":
        headers["x-ms-blob-type"] = "BlockBlob"
    return headers


async def redirect(request: web.Request) -> web.StreamResponse:
    """``GET /redirect?to=URL``: a 302 anywhere, for tests of credentials across origins."""
    target = request.query.get("to")
    if not target:
        raise web.HTTPBadRequest(text="missing ?to=")
    raise web.HTTPFound(location=target)
