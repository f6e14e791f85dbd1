"""When paged listings end (``sources.paging``): the rule alone, then the CLI against the sandbox
behind a front server that shifts, reorders or repeats the pages of both paged listings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import bagit  # type: ignore[import-untyped]
import pytest
from aiohttp import web

from assetvault.sandbox import DatasetConfig, SandboxThread
from assetvault.sources.paging import STALE_PAGES, Paging

from ..conftest import (
    API_KEY,
    TOKEN,
    Cli,
    onpremise_job,
    run_cli,
    spectrum_job,
    states,
    write_manifest,
)
from ..loopback import Loopback, forward

# --- the rule -----------------------------------------------------------------------------------


def test_a_short_or_empty_page_is_the_last() -> None:
    paging = Paging(10)
    assert paging.after(1, 10, 10) and paging.after(2, 10, 3)
    assert not paging.after(3, 9, 9) and paging.cut_short is None
    assert not Paging(10).after(1, 0, 0) and Paging(10).cut_short is None


def test_pages_with_nothing_new_go_on_until_the_guard() -> None:
    paging = Paging(2)
    for page in range(1, 10):  # one stale page in two never trips it
        assert paging.after(page, 2, page % 2)
    stale = [paging.after(page, 2, 0) for page in range(10, 10 + STALE_PAGES)]
    assert stale == [True] * (STALE_PAGES - 1) + [False]
    assert paging.cut_short is not None and "incomplete" in paging.cut_short
    assert f"after page {9 + STALE_PAGES}" in paging.cut_short


def test_a_whole_list_on_every_page_ends_complete_on_its_first_repeat() -> None:
    # per_page ignored, the whole list sent each time (more records than asked): the first
    # page was all of it; one that honours only its own size brings new records next.
    paging = Paging(10)
    assert paging.after(1, 25, 25) and not paging.after(2, 25, 0)
    assert paging.cut_short is None
    paging = Paging(10)
    assert paging.after(1, 25, 25) and paging.after(2, 25, 25) and not paging.after(3, 4, 4)


def test_the_page_cap_ends_a_listing_incomplete() -> None:
    paging = Paging(1, max_pages=3)
    assert paging.after(1, 1, 1) and paging.after(2, 1, 1) and not paging.after(3, 1, 1)
    assert paging.cut_short is not None and "cap of 3 pages" in paging.cut_short


# --- the CLI, the pages served through a front server -------------------------------------------

# One organization and five products of five records each: pages of two are [1 2] [3 4] [5].
WORLD = DatasetConfig(organizations=1, assets_per_org=5, products=5, beers=0, assets_per_owner=1)
PAGE_SIZE = 2


class Front:
    """Serves the sandbox, with page N of each paged listing replaced as ``mode`` says:
    ``shift`` page N-1 (two records inserted at the head after page 1 was read), ``reorder``
    the same with the repeated page reversed (an unstable order), ``stuck`` page 1 (a server
    that ignores the page parameter); ``none`` leaves the pages alone."""

    def __init__(self, box: SandboxThread) -> None:
        self.box = box
        self.mode = "none"

    def served(self, page: int) -> int:
        if self.mode == "stuck":
            return 1
        return page - 1 if self.mode in ("shift", "reorder") and page > 1 else page

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        if "page" not in request.query:
            return await forward(request, self.box.api_url)
        page = int(request.query["page"])
        query = {**request.query, "page": str(self.served(page))}
        answer = await forward(request, self.box.api_url, f"{request.path}?{urlencode(query)}")
        if self.mode != "reorder" or page != 2:
            return answer
        assert isinstance(answer.body, bytes)
        body = json.loads(answer.body)
        for records in (body.get("contents"), body.get("products")):
            if isinstance(records, list):
                records.reverse()
        return web.json_response(body)


@pytest.fixture
def front() -> Iterator[tuple[Front, Loopback]]:
    """The sandbox behind a Front, and the Front's server."""
    with SandboxThread(WORLD) as box:
        pages = Front(box)
        with Loopback(pages) as server:
            yield pages, server


def listed_pages(server: Loopback) -> dict[str, list[str]]:
    """The pages asked for, per paged listing, in the order they came."""
    pages: dict[str, list[str]] = {"spectrum": [], "products": []}
    for path in server.paths():
        split = urlsplit(path)
        page = parse_qs(split.query).get("page")
        if page:
            pages["products" if split.path == "/products.json" else "spectrum"] += page
    return pages


def run_both(tmp_path: Path, box: SandboxThread, server: Loopback) -> Cli:
    jobs = [spectrum_job(box, base_url=server.url, page_size=PAGE_SIZE),
            onpremise_job(box, base_url=server.url, products="all", beers=[],
                          page_size=PAGE_SIZE)]
    result = run_cli("run", write_manifest(tmp_path, jobs), "--no-progress")
    assert "Traceback" not in result.err, result.err
    return result


def first_run(tmp_path: Path, front: tuple[Front, Loopback]) -> dict[str, str]:
    """The states after a run through untouched pages; the front's log cleared."""
    pages, server = front
    assert run_both(tmp_path, pages.box, server).code == 0
    assert listed_pages(server) == {"spectrum": ["1", "2", "3"], "products": ["1", "2", "3"]}
    server.arrivals.clear()
    return states(tmp_path / "archive")


@pytest.mark.parametrize("mode", ["shift", "reorder"])
def test_a_full_page_of_records_already_seen_does_not_end_a_listing(
        tmp_path: Path, front: tuple[Front, Loopback], mode: str) -> None:
    before = first_run(tmp_path, front)
    pages, server = front
    pages.mode = mode
    result = run_both(tmp_path, pages.box, server)
    assert result.code == 0, result.err
    # [1 2] [1 2] [3 4] [5]: past the page with nothing new, to the short page.
    assert listed_pages(server) == {"spectrum": ["1", "2", "3", "4"],
                                    "products": ["1", "2", "3", "4"]}
    archive = tmp_path / "archive"
    assert states(archive) == before and "gone" not in before.values()
    bagit.Bag(str(archive)).validate()


def test_a_server_that_ignores_the_page_leaves_the_listing_failed_not_gone(
        tmp_path: Path, front: tuple[Front, Loopback]) -> None:
    before = first_run(tmp_path, front)
    pages, server = front
    pages.mode = "stuck"
    result = run_both(tmp_path, pages.box, server)
    assert result.code == 1, result.err
    stale = [str(p) for p in range(1, 2 + STALE_PAGES)]
    assert listed_pages(server) == {"spectrum": stale, "products": stale}
    failures = [line for line in result.err.splitlines() if line.startswith("failed:")]
    assert len(failures) == 2, result.err
    for job in ("spec: spectrum/carhartt/", "onp: onpremise/products"):
        (line,) = [f for f in failures if job in f]
        assert "incomplete" in line and f"page={stale[-1]}" in line
    assert API_KEY not in result.err + result.out and TOKEN not in result.err + result.out
    archive = tmp_path / "archive"
    assert states(archive) == before  # nothing gone: the pages after the cut are unknown
    bagit.Bag(str(archive)).validate()
