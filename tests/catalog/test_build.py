"""The catalog of an archive holding broken and hostile files: every file previewed or given a
reason, nothing escapes its escaping, nothing absolute, the bag untouched, re-builds free."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path, PurePosixPath

import bagit
import pytest

from assetvault.bag.write import PayloadFile, write_bag
from assetvault.catalog import build as build_module
from assetvault.catalog import build_catalog
from assetvault.catalog.records import history_index
from assetvault.storage import LocalStorage

from .kit import HOSTILE_NAME, HOSTILE_REF, OLD_VERSION, hostile_archive, make_archive, png

STATE = Path(".assetvault/state.sqlite")


def _build(root: Path) -> build_module.BuildResult:
    return build_catalog(LocalStorage(root), root / STATE, workers=2)


def _catalog_text(root: Path) -> str:
    return "\n".join(p.read_text("utf-8") for p in sorted((root / "catalog").rglob("*"))
                     if p.suffix in (".html", ".js", ".css"))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, build_module.BuildResult]:
    root = hostile_archive(tmp_path_factory.mktemp("catalog") / "archive")
    return root, _build(root)


def test_every_file_gets_a_preview_or_a_reason(hostile: tuple[Path, build_module.BuildResult],
                                               ) -> None:
    root, result = hostile
    assert result.records == 3 and result.groups == 1  # 1002: an asset.json nested too deep
    previews = sorted(p.suffix for p in (root / "catalog/previews").rglob("*.*"))
    # good PNG, DST, PDF and HOSTILE_FILE: images; the 4 bad files: reasons
    assert previews.count(".png") == 4 and previews.count(".txt") == 4
    assert result.rendered == 8
    page = next((root / "catalog/pages").glob("*.html")).read_text()
    for reason in ("decompression bomb", "cannot be read as PNG", "truncated",
                   "cannot be read as PDF", "not archived (pending)", "not archived (failed)"):
        assert reason in page
    assert page.count('<img class="preview"') == 4
    history = f"../../.assetvault/history/spectrum/carhartt/7000/1000/original.{OLD_VERSION}.png"
    assert f'<a href="{history}">original.png, replaced 2026-01-01 00:00:00 UTC' in page


def test_network_text_stays_text(hostile: tuple[Path, build_module.BuildResult]) -> None:
    root, _ = hostile
    text = _catalog_text(root)
    assert HOSTILE_NAME not in text and "<script>alert" not in text and "<b " not in text
    assert "&lt;b onmouseover=alert(3)&gt;bold.png" in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in text
    # in the search shard, as a JSON string with no markup character
    assert HOSTILE_REF.replace('"', '\\"').replace("<", "\\u003c").replace(">", "\\u003e") in text
    assert "/%3Cb%20onmouseover%3Dalert%283%29%3Ebold.png" in text  # its link, percent-encoded


def test_links_are_relative_and_stay_on_this_machine(
        hostile: tuple[Path, build_module.BuildResult]) -> None:
    root, _ = hostile
    text = _catalog_text(root)
    assert str(root) not in text and str(root.resolve()) not in text
    refs = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert refs and all(not re.match(r"[a-z]+:|//|/", r, re.I) for r in refs), refs
    assert not re.search(r"url\(|@import", _catalog_text(root).split("</style>")[0]
                         .replace("repeating-linear-gradient", ""))
    for ref in refs:  # every link lands on a file of the archive
        page_dir = root / "catalog" / "pages"
        target = ref.split("#")[0]
        if target and ".." in target:
            from urllib.parse import unquote
            assert (page_dir / unquote(target)).resolve().is_file() or \
                (root / "catalog" / unquote(target)).resolve().is_file(), ref


def test_the_bag_stays_valid_and_catalog_is_in_no_manifest(
        hostile: tuple[Path, build_module.BuildResult]) -> None:
    root, _ = hostile
    bagit.Bag(str(root)).validate()
    for name in ("manifest-sha256.txt", "tagmanifest-sha256.txt"):
        assert "catalog/" not in (root / name).read_text()
    # the next run's seal rewrites the tag files and leaves catalog/ alone
    before = sorted(p.relative_to(root) for p in (root / "catalog").rglob("*"))
    write_bag(LocalStorage(root), iter(_payload(root)), agent="the next run")
    assert sorted(p.relative_to(root) for p in (root / "catalog").rglob("*")) == before
    bagit.Bag(str(root)).validate()
    assert "catalog/" not in (root / "tagmanifest-sha256.txt").read_text()


def _payload(root: Path) -> list[PayloadFile]:
    db = sqlite3.connect(root / STATE)
    try:
        return [PayloadFile(PurePosixPath(p), s, n) for p, s, n in db.execute(
            "SELECT path, sha256, size FROM items WHERE status = 'complete' ORDER BY path")]
    finally:
        db.close()


def test_a_rebuild_renders_nothing_new_and_a_new_file_alone(tmp_path: Path) -> None:
    root = hostile_archive(tmp_path / "archive")
    first = _build(root)
    again = _build(root)
    assert (first.rendered, again.rendered) == (8, 0)
    assert again.reused == 8 and again.placeholders == first.placeholders
    page = next((root / "catalog/pages").glob("*.html")).read_text()
    assert "decompression bomb" in page  # the reason is read back, not rendered again


def test_pages_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_module, "PAGE_RECORDS", 10)
    monkeypatch.setattr(build_module, "LIST_GROUPS", 2)
    monkeypatch.setattr(build_module, "INDEX_GROUPS", 2)
    same = png()
    files = {f"onpremise/products/{p}/{a}/original.png": same
             for p in range(5) for a in range(100 * p, 100 * p + 25)}
    root = make_archive(tmp_path / "archive", files, {})
    result = _build(root)
    assert (result.records, result.groups, result.rendered) == (125, 5, 1)
    pages = sorted((root / "catalog/pages").glob("*.html"))
    assert len(pages) == 5 * 3 and len(list((root / "catalog/groups").glob("*.html"))) == 3
    assert all(p.read_text().count('class="record') <= 10 for p in pages)
    assert 'rel="next"' in (root / "catalog/groups/1.html").read_text()
    assert "groups/1.html" in (root / "catalog/index.html").read_text()


def test_history_finds_its_record_in_every_layout(tmp_path: Path) -> None:
    replaced = {"urls/job/host/a b.png": "urls/job/host/a b.png",
                "onpremise/products/7/product.json": "onpremise/products/7/product.json",
                "onpremise/products/7/60/versions/web": "onpremise/products/7/60",
                "spectrum/c/o/1/jobs/2-R/R.DST": "spectrum/c/o/1"}
    for path in replaced:
        folder, _, name = path.rpartition("/")
        stem, dot, suffix = name.rpartition(".")
        versioned = f"{stem}.{OLD_VERSION}.{suffix}" if dot else f"{name}.{OLD_VERSION}"
        target = tmp_path / ".assetvault/history" / folder / versioned
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"old")
    found = history_index(LocalStorage(tmp_path))
    assert sorted(found) == sorted(replaced.values())


def test_a_record_with_many_files_shows_a_bounded_number(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_module, "PAGE_FILES", 150)
    same = png()
    files = {f"spectrum/c/o/{r}/jobs/{n}-R/R.PNG": same for r in (1, 2) for n in range(250)}
    root = make_archive(tmp_path / "archive", files, {})
    result = _build(root)
    assert (result.records, result.rendered) == (2, 1)
    pages = sorted((root / "catalog/pages").glob("*.html"))
    assert len(pages) == 2  # 200 files shown of the first record: the second starts a page
    for page in pages:
        text = page.read_text()
        assert text.count("<figure") == 200 and "and 50 more files" in text
