"""The catalog in a real browser (headless Chromium): the demo's catalog, and the catalog of an
archive of broken and hostile files."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import bagit
import pytest
from PIL import Image

from ..conftest import run_cli
from .browser import dump_dom, file_url, requests_in, require_chromium, screenshot
from .kit import HOSTILE_NAME, hostile_archive


class _Elements(HTMLParser):
    """Every element of a dumped DOM, as (tag, attributes)."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def _elements(dom: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(dom)
    return parser.elements


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_chromium()
    root = tmp_path_factory.mktemp("demo") / "archive"
    result = run_cli("demo", root, "--no-progress", timeout=120)
    assert result.code == 0, result.err
    assert f"open: {root.resolve()}/catalog/index.html" in result.out
    return root


def test_overview_and_a_record_page_render(demo: Path, tmp_path: Path) -> None:
    shot = screenshot(file_url(demo / "catalog/index.html"), tmp_path / "overview.png")
    page = _page_of(demo, "CCG00001005001")
    record = screenshot(file_url(page), tmp_path / "record.png")
    for png in (shot, record):
        assert png.stat().st_size > 20_000
        with Image.open(png) as im:
            assert im.size == (1280, 1400) and len(im.getcolors(1 << 16) or []) > 50


def test_records_and_previews_are_in_the_dom(demo: Path) -> None:
    dom = dump_dom(file_url(_page_of(demo, "CCG00001005001")))
    elements = _elements(dom)
    images = [a["src"] or "" for tag, a in elements if tag == "img"]
    assert len(images) >= 8 and all(s.startswith("../previews/") for s in images)
    assert all((demo / "catalog/pages" / s).is_file() for s in images)
    sections = [a for tag, a in elements if tag == "section"]
    assert len(sections) == 6  # the organization's six records
    assert "CCG00001005001R1.DST" in dom and "left chest" in dom


def test_search_finds_a_record_by_its_reference(demo: Path) -> None:
    dom = dump_dom(file_url(demo / "catalog/index.html", "q=CCG00001005001"))
    results = dom.split('id="results"')[1].split("</ol>")[0]
    links = [a["href"] for tag, a in _elements(results) if tag == "a"]
    assert len(links) == 1 and links[0] is not None and links[0].startswith("pages/")
    page, anchor = links[0].split("#")
    assert f'id="{anchor}"' in (demo / "catalog" / page).read_text()
    assert "1 found" in dom
    # filters: state and format alone
    pending = dump_dom(file_url(demo / "catalog/index.html", "q=&state=pending"))
    assert "1 found" in pending
    dst = dump_dom(file_url(demo / "catalog/index.html", "format=dst"))
    assert " found" in dst and "0 found" not in dst
    # A link with a bare % (typed by hand, or cut): searched as typed, the page still works.
    bare = dump_dom(file_url(demo / "catalog/index.html", "q=CCG00001005001%"))
    assert "0 found" in bare  # the search ran (a URIError stopped the script before it)


def test_the_demo_bag_stays_valid_and_a_rebuild_renders_nothing(demo: Path) -> None:
    bagit.Bag(str(demo)).validate()
    again = run_cli("catalog", demo)
    assert again.code == 0, again.err
    assert "previews: 0 rendered" in again.out


def test_a_hostile_name_never_becomes_an_element(tmp_path: Path) -> None:
    require_chromium()
    root = hostile_archive(tmp_path / "archive")
    assert run_cli("catalog", root).code == 0
    page = next((root / "catalog/pages").glob("*.html"))
    dom = dump_dom(file_url(page), netlog=tmp_path / "page.json")
    assert requests_in(tmp_path / "page.json") == set()  # no request leaves the file system
    elements = _elements(dom)
    assert not [a for tag, a in elements if tag == "img" and a.get("src") == "x"]
    assert not [tag for tag, _ in elements if tag in ("script", "b")]
    assert HOSTILE_NAME.replace("<", "&lt;").replace(">", "&gt;") in dom
    found = dump_dom(file_url(root / "catalog/index.html", "q=onerror"),
                     netlog=tmp_path / "search.json")
    assert requests_in(tmp_path / "search.json") == set()
    results = found.split('id="results"')[1].split("</ol>")[0]
    assert "&lt;img src=x onerror=alert(1)&gt;" in results
    assert not [a for tag, a in _elements(found) if tag == "img"]


def test_the_network_check_sees_a_page_that_calls_out(tmp_path: Path) -> None:
    """The net log check above is not vacuous: a page with remote references is caught."""
    require_chromium()
    page = tmp_path / "leak.html"
    page.write_text('<img src="http://127.0.0.1:9/leak.png">'
                    '<script src="https://example.invalid/x.js"></script>')
    dump_dom(file_url(page), budget_ms=1000, netlog=tmp_path / "net.json")
    assert requests_in(tmp_path / "net.json") == {"http://127.0.0.1:9/leak.png",
                                                   "https://example.invalid/x.js"}


def _page_of(root: Path, text: str) -> Path:
    return next(p for p in (root / "catalog/pages").glob("*.html") if text in p.read_text())
