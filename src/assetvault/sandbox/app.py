"""The aiohttp applications: the API port (both APIs and files) and the files port (files only)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from .apis import onpremise_listing, owner_list, spectrum_listing
from .faults import NO_FAULT
from .filehost import redirect, serve_file
from .keys import DECISION, STATE
from .state import SandboxState

__all__ = ["make_app", "scope_of"]

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ONPREMISE = re.compile(r"^/(?:(products|beers|restaurants|menu_items)/[^/]+/assets"
                        r"|products|beers|menu_items)\.json$")
_FILE_PREFIXES = ("/blob/", "/cdn/", "/rackcdn/", "/redirect")


def scope_of(path: str) -> str | None:
    """The fault scope of a request path: spectrum, onpremise, files, or None (control routes)."""
    if path.startswith("/api/assets/saved/"):
        return "spectrum"
    if _ONPREMISE.match(path):
        return "onpremise"
    if path.startswith(_FILE_PREFIXES):
        return "files"
    return None


@web.middleware
async def _observe(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Count and log every request, then apply status faults before any handler runs."""
    if request.path.startswith("/_sandbox/"):
        return await handler(request)
    state = request.app[STATE]
    state.observe(request)
    scope = scope_of(request.path)
    decision = state.faults.decide(scope, request.path) if scope else NO_FAULT
    request[DECISION] = decision
    rule = decision.status
    if rule is not None:
        headers = {}
        retry_after = rule.retry_after_value()
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        return web.json_response({"error": f"injected fault {rule.kind}"}, status=int(rule.kind),
                                 headers=headers)
    return await handler(request)


async def _stats(request: web.Request) -> web.StreamResponse:
    counts = dict(request.app[STATE].counts)
    return web.json_response({"counts": counts, "total": sum(counts.values())})


async def _reset(request: web.Request) -> web.StreamResponse:
    request.app[STATE].reset_counts()
    return web.json_response({"ok": True})


def make_app(state: SandboxState, *, apis: bool) -> web.Application:
    """An application over ``state``; ``apis=False`` gives the files-only second origin."""
    app = web.Application(middlewares=[_observe])
    app[STATE] = state
    if apis:
        app.router.add_get("/api/assets/saved/client/{client}/organization/{org}",
                           spectrum_listing)
        app.router.add_get(r"/{kind:products|beers|restaurants|menu_items}/{id}/assets.json",
                           onpremise_listing)
        app.router.add_get(r"/{kind:products|beers|menu_items}.json", owner_list)
    for prefix in ("blob", "cdn", "rackcdn"):
        # Hostile names hold CR/LF, which ``.`` would not match.
        app.router.add_get(f"/{prefix}/{{tail:[\\s\\S]+}}", serve_file)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/_sandbox/stats", _stats)
    app.router.add_post("/_sandbox/reset", _reset)
    return app
