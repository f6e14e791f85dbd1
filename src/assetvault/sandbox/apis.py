"""The two listing APIs: Spectrum's saved assets, OnPremise's product assets and account lists."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from . import hostile, onpremise
from .detrand import envelope_date
from .faults import NO_FAULT
from .keys import DECISION, STATE
from .send import send_json_bytes
from .state import SandboxState

__all__ = ["onpremise_listing", "owner_list", "spectrum_listing"]

API_VERSION = "3.0.23173.1"
TASTEVIN_VERSION = "1.2"
_SINCE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")


def _json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


async def _reply(request: web.Request, status: int, data: Any) -> web.StreamResponse:
    fault = request.get(DECISION, NO_FAULT).body
    return await send_json_bytes(request, status, _json(data), fault)


async def spectrum_listing(request: web.Request) -> web.StreamResponse:
    """``GET /api/assets/saved/client/{client}/organization/{org}?page=N&pageSize=M``.

    Unknown client or organization: 200 with ``contents: []`` and ``error`` set, as the envelope
    allows; a non-null ``error`` is how the contract says a listing failed.
    """
    state = request.app[STATE]
    cfg = state.dataset.config
    if request.headers.get("SPECTRUM_API_TOKEN") != cfg.spectrum_token:
        return await _reply(request, 403, {"message": "Forbidden: invalid or missing token"})
    if not state.limiter.admit(request.path, time.monotonic()):
        return await _reply(request, 403, {"message": "Forbidden: rate limit exceeded"})
    client, org = request.match_info["client"], request.match_info["org"]
    special = hostile.special_listing(cfg, org) if cfg.hostile else None
    if special is not None:
        return await _special(request, special)
    try:
        page = int(request.query.get("page", "1"))
        size = int(request.query.get("pageSize", str(cfg.default_page_size)))
    except ValueError:
        return await _reply(request, 400, {"message": "page and pageSize must be integers"})
    if page < 1 or size < 1:
        return await _reply(request, 400, {"message": "page and pageSize must be at least 1"})
    if client != cfg.client or not state.dataset.has_organization(org):
        error = f"Organization {org} not found for client {client}"
        fault = request.get(DECISION, NO_FAULT).body
        return await send_json_bytes(request, 200, _envelope(b"[]", error), fault)
    key = (org, page, size, state.dataset.version, state.api_url, state.files_url)
    contents = state.pages.get(key)
    if contents is None:
        contents = _json(state.dataset.spectrum_contents(org, (page - 1) * size, size,
                                                         state.api_url, state.files_url))
        state.pages.put(key, contents)
    fault = request.get(DECISION, NO_FAULT).body
    return await send_json_bytes(request, 200, _envelope(contents, None), fault)


def _envelope(contents: bytes, error: str | None) -> bytes:
    """The envelope around already serialised contents, fields in the API's order."""
    digest = hashlib.md5(contents, usedforsecurity=False).digest()
    head = _json({
        "lastModification": envelope_date(datetime.now(UTC)),
        "error": error,
        "apiVersion": API_VERSION,
        "hash": base64.b64encode(digest).decode("ascii"),
    })
    return head[:-1] + b',"contents":' + contents + b"}"


async def onpremise_listing(request: web.Request) -> web.StreamResponse:
    """``GET /{products|beers|restaurants|menu_items}/{id}/assets.json?api_key=…``."""
    state = request.app[STATE]
    cfg = state.dataset.config
    refused = _refusal(state, request)
    if refused is not None:
        return await _reply(request, 412, refused)
    kind, owner = request.match_info["kind"], request.match_info["id"]
    special = hostile.special_listing(cfg, owner) if cfg.hostile else None
    if special is not None:
        return await _special(request, special)
    since = None
    if "last_updated_at" in request.query:
        since = _parse_since(request.query["last_updated_at"])
        if since is None:
            return await _reply(request, 400, {"error": "last_updated_at: YYYY-MM-DD HH:MM:SS"})
    try:
        assets = state.dataset.onpremise_assets(kind, owner, since, state.files_url)
    except KeyError:
        return await _reply(request, 404, {"error": f"No such {kind[:-1]}: {owner}"})
    return await _reply(request, 200, {"assets": assets})


def _refusal(state: SandboxState, request: web.Request) -> dict[str, str] | None:
    """Why OnPremise answers 412 (a bad api_key or X-TASTEVIN-VERSION), or None."""
    if request.query.get("api_key") != state.dataset.config.onpremise_api_key:
        return {"error": "Invalid or missing api_key"}
    if request.headers.get("X-TASTEVIN-VERSION") != TASTEVIN_VERSION:
        return {"error": "Missing or unsupported X-TASTEVIN-VERSION"}
    return None


async def owner_list(request: web.Request) -> web.StreamResponse:
    """``GET /{products|beers|menu_items}.json?api_key=…[&per_page=N&page=P][&last_updated_at=…]``.

    Only products are paged, and only with ``per_page``; a page after the first needs a
    ``last_updated_at`` (the API's paging rules), else 400.
    """
    state = request.app[STATE]
    refused = _refusal(state, request)
    if refused is not None:
        return await _reply(request, 412, refused)
    kind = request.match_info["kind"]
    answer = state.dataset.list_answer(kind)
    if answer is not None:
        status, content_type, body = answer
        fault = request.get(DECISION, NO_FAULT).body
        return await send_json_bytes(request, status, body, fault, {"Content-Type": content_type})
    since = None
    if "last_updated_at" in request.query:
        since = _parse_since(request.query["last_updated_at"])
        if since is None:
            return await _reply(request, 400, {"error": "last_updated_at: YYYY-MM-DD HH:MM:SS"})
    window = _window(request, kind, since is not None)
    if isinstance(window, str):
        return await _reply(request, 400, {"error": window})
    records = state.dataset.owner_records(kind, since, *window)
    shape = state.dataset.config.owner_list_shape
    return await _reply(request, 200, onpremise.list_body(kind, records, shape))


def _window(request: web.Request, kind: str, has_since: bool) -> tuple[int, int | None] | str:
    """(offset, limit) of the records a list request asks for, or why it is refused."""
    if kind != "products" or "per_page" not in request.query:
        return 0, None  # page is ignored without per_page, as the API documents
    try:
        per_page = int(request.query["per_page"])
        page = int(request.query.get("page", "1"))
    except ValueError:
        return "per_page and page must be integers"
    if per_page < 1 or page < 1:
        return "per_page and page must be at least 1"
    if page > 1 and not has_since:
        return (f"page {page} asked for without last_updated_at: every request after page 1 "
                "must send one (1970-01-01 00:00:00 for a full listing)")
    return (page - 1) * per_page, per_page


def _parse_since(value: str) -> datetime | None:
    for fmt in _SINCE_FORMATS:
        try:
            return datetime.strptime(value.strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


async def _special(request: web.Request, special: tuple[str, bytes]) -> web.StreamResponse:
    content_type, body = special
    fault = request.get(DECISION, NO_FAULT).body
    return await send_json_bytes(request, 200, body, fault, {"Content-Type": content_type})
