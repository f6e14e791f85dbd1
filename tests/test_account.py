"""Whole OnPremise accounts (``products: all``, ``beers: all``, ``menu_items: all``).

The runs are the real CLI in a subprocess against the loopback sandbox; what the client asked
for is read from the sandbox's request log, what it kept from the archive and its state
database. A few pure checks of the mapping come first.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import bagit  # type: ignore[import-untyped]
import pytest

from assetvault.archive import layout
from assetvault.config.jobs import OnpremiseJob
from assetvault.models import Document, ListingFailure
from assetvault.sandbox import DatasetConfig, SandboxThread
from assetvault.sources import onpremise, paging
from assetvault.sources import onpremise_owners as owners

from .conftest import API_KEY, Cli, run_cli, states, write_manifest

FULL = "1970-01-01 00:00:00"
JSON = "application/json"


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def box3() -> Iterator[SandboxThread]:
    """Three products, nothing else: a manifest naming one of them misses two."""
    box = SandboxThread(DatasetConfig(products=3, beers=0)).start()
    try:
        yield box
    finally:
        box.stop()


def account_job(box: SandboxThread, **kw: Any) -> dict[str, Any]:
    job = {"name": "acct", "source": "onpremise", "base_url": box.api_url, "api_key": API_KEY,
           "products": "all", "rate_limit": 0, "retries": 1}
    job.update(kw)
    return job


def run(tmp_path: Path, box: SandboxThread, **kw: Any) -> Cli:
    manifest = write_manifest(tmp_path, [account_job(box, **kw)])
    result = run_cli("run", manifest, "--no-progress")
    assert "Traceback" not in result.err, result.err
    return result


def list_requests(box: SandboxThread, kind: str = "products") -> list[dict[str, str]]:
    """The query of every request for ``/{kind}.json``, in the order they came."""
    return [{k: v[0] for k, v in parse_qs(r.query, keep_blank_values=True).items()}
            for r in box.requests if r.path == f"/{kind}.json"]


def sandbox_list(box: SandboxThread, kind: str = "products") -> Any:
    request = urllib.request.Request(f"{box.api_url}/{kind}.json?api_key={API_KEY}",
                                     headers={"X-TASTEVIN-VERSION": "1.2"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def record(owner: int | str, **more: Any) -> dict[str, Any]:
    return {"id": owner, "updated_at": "2024-01-02T03:04:05+00:00", "name": f"wine {owner}",
            **more}


def answer(box: SandboxThread, body: Any, *, status: int = 200, content_type: str = JSON,
           kind: str = "products") -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    box.dataset.set_list_answer(kind, (status, content_type, raw))


def assert_owner_archived(archive: Path, box: SandboxThread, kind: str, owner: str,
                          expected: dict[str, Any]) -> None:
    folder = archive / "data" / layout.onpremise_owner_dir(kind, owner)
    saved = folder / layout.OWNER_RECORDS[kind]
    assert json.loads(saved.read_text()) == expected
    asset_ids = box.dataset.asset_ids(kind, owner)
    assert asset_ids
    for asset_id in asset_ids:
        assert (folder / str(asset_id) / "asset.json").is_file(), (owner, asset_id)


# -- the mapping, pure -----------------------------------------------------------------------


def listing(**kw: Any) -> owners.OwnerList:
    job = OnpremiseJob(name="acct", api_key="k-SECRET-1", whole=frozenset({"products"}), **kw)
    return owners.OwnerList(job, "products", onpremise.job_redactor(job))


def test_every_documented_shape_gives_the_inner_record() -> None:
    inner = record(7)
    for body in ({"products": [inner]}, {"products": [{"product": inner}]}, [inner],
                 [{"product": inner}]):
        elements = owners.list_elements("products", body)
        assert isinstance(elements, list)
        (element,) = elements
        owner_id, doc = owners.map_owner(listing(), element, 1, 1)
        assert owner_id == "7" and isinstance(doc, Document)
        assert doc.path == "onpremise/products/7/product.json"
        assert json.loads(doc.body) == inner
        assert doc.upstream_version == inner["updated_at"]
    bad: Any
    for bad in ({"beers": []}, {"products": None}, "x", None):
        assert isinstance(owners.list_elements("products", bad), str)


def test_an_element_without_an_id_is_a_failure_of_that_element_alone() -> None:
    for element in ({"name": "nameless"}, {"id": None}, {"id": True}, 42, {"product": 3}):
        owner_id, failure = owners.map_owner(listing(), element, 2, 7)
        assert owner_id is None and isinstance(failure, ListingFailure)
        assert failure.key == "onpremise/products#7" and failure.job == "acct"
        assert "page=2" in failure.url and "k-SECRET-1" not in failure.url


def test_page_parameters_follow_the_api_rules() -> None:
    lst = listing(page_size=50)
    assert lst.url == "https://dashboard.onpremisewine.com/products.json"
    assert lst.params(1) == {"api_key": "k-SECRET-1", "per_page": "50", "page": "1"}
    assert lst.params(3) == {"api_key": "k-SECRET-1", "per_page": "50", "page": "3",
                             "last_updated_at": FULL}
    beers = owners.OwnerList(lst.job, "beers", lst.redactor)
    assert beers.url.endswith("/beers.json") and beers.params(1) == {"api_key": "k-SECRET-1"}


def test_an_odd_owner_id_is_made_safe_and_an_asset_cannot_take_the_record_s_place() -> None:
    owner_id, doc = owners.map_owner(listing(), record("../x"), 1, 1)
    assert owner_id == "../x" and isinstance(doc, Document)
    assert doc.path == f"onpremise/products/{layout.safe_segment('../x')}/product.json"
    assert ".." not in doc.path.split("/")
    clash = layout.onpremise_dir("products", "7", "product.json")
    assert clash != "onpremise/products/7/product.json"
    assert clash.startswith("onpremise/products/7/product~") and clash.endswith(".json")


# -- whole accounts, end to end ----------------------------------------------------------------


def test_a_whole_account_run_finds_products_the_manifest_does_not_name(
        box3: SandboxThread, tmp_path: Path) -> None:
    result = run(tmp_path, box3)
    assert result.code == 0, result.err
    archive = tmp_path / "archive"
    listed = sandbox_list(box3)["products"]
    assert [p["id"] for p in listed] == [1001, 1002, 1003]
    for product in listed:
        assert_owner_archived(archive, box3, "products", str(product["id"]), product)
    bagit.Bag(str(archive)).validate()
    assert run_cli("verify", archive).code == 0


def test_products_are_paged_in_order_and_each_page_handled_before_the_next(
        tmp_path: Path) -> None:
    with SandboxThread(DatasetConfig(products=5, beers=0)) as box:
        assert run(tmp_path, box, page_size=2).code == 0
        asked = list_requests(box)
        log = [r.path for r in box.requests]
    assert [q["page"] for q in asked] == ["1", "2", "3"]
    assert all(q["per_page"] == "2" for q in asked)
    assert "last_updated_at" not in asked[0]
    assert [q["last_updated_at"] for q in asked[1:]] == [FULL, FULL]
    # Page 2 is asked for only once both owners of page 1 are listed.
    pages = [i for i, path in enumerate(log) if path == "/products.json"]
    for owner in ("1001", "1002"):
        assert log.index(f"/products/{owner}/assets.json") < pages[1]
    assert log.index("/products/1004/assets.json") > pages[1]
    for number in range(1001, 1006):
        assert (tmp_path / f"archive/data/onpremise/products/{number}/product.json").is_file()


def test_since_never_narrows_the_products_list(box3: SandboxThread, tmp_path: Path) -> None:
    assert run(tmp_path, box3, page_size=1, since="2099-01-01 00:00:00").code == 0
    asked = list_requests(box3)
    assert [q.get("last_updated_at") for q in asked] == [None, FULL, FULL, FULL]
    assets = [parse_qs(r.query) for r in box3.requests if r.path.endswith("/assets.json")]
    assert len(assets) == 3
    assert all(q["last_updated_at"] == ["2099-01-01 00:00:00"] for q in assets)
    for owner in ("1001", "1002", "1003"):
        assert (tmp_path / f"archive/data/onpremise/products/{owner}/product.json").is_file()


@pytest.mark.parametrize("shape", ["object", "wrapped", "bare"])
def test_every_list_shape_the_api_uses(shape: str, tmp_path: Path) -> None:
    config = DatasetConfig(products=2, beers=0, owner_list_shape=shape)
    with SandboxThread(config) as box:
        body = sandbox_list(box)
        assert run(tmp_path, box).code == 0
        elements = body if shape == "bare" else body["products"]
        inner = [e["product"] if shape == "wrapped" else e for e in elements]
        assert isinstance(body, list) == (shape == "bare")
        for product in inner:
            assert_owner_archived(tmp_path / "archive", box, "products", str(product["id"]),
                                  product)


def test_an_element_without_an_id_is_reported_and_the_rest_goes_on(
        box3: SandboxThread, tmp_path: Path) -> None:
    answer(box3, [record(1001), {"name": "nameless"}, record(1003)])
    result = run(tmp_path, box3)
    assert result.code == 1
    assert "onpremise/products#2" in result.err and "has no id" in result.err
    assert API_KEY not in result.err + result.out
    archive = tmp_path / "archive"
    for owner in ("1001", "1003"):
        assert_owner_archived(archive, box3, "products", owner, record(int(owner)))
    assert not (archive / "data/onpremise/products/1002").exists()


@pytest.mark.parametrize("since", [None, "2099-01-01 00:00:00"])
@pytest.mark.parametrize(("status", "content_type", "body", "words"), [
    (200, "text/html", b"<!DOCTYPE html><html><body>Bad Gateway</body></html>", "not JSON"),
    (500, JSON, b'{"error": "boom"}', "500"),
    (200, JSON, b'{"wines": []}', "neither a JSON array nor an object with a products array"),
])
def test_a_failed_products_list_is_reported_and_marks_nothing_gone(
        box3: SandboxThread, tmp_path: Path, status: int, content_type: str, body: bytes,
        words: str, since: str | None) -> None:
    assert run(tmp_path, box3).code == 0
    archive = tmp_path / "archive"
    before = states(archive)
    assert before and set(before.values()) <= {"complete", "pending"}
    answer(box3, body, status=status, content_type=content_type)
    extra = {} if since is None else {"since": since}
    result = run(tmp_path, box3, **extra)
    assert result.code == 1, result.err
    failures = [line for line in result.err.splitlines() if line.startswith("failed:")]
    assert len(failures) == 1, result.err
    assert "acct: onpremise/products" in failures[0] and words in failures[0]
    assert "api_key=***" in failures[0] and API_KEY not in result.err + result.out
    assert states(archive) == before
    bagit.Bag(str(archive)).validate()


def test_a_refused_key_on_the_products_list_is_a_credentials_error(
        box3: SandboxThread, tmp_path: Path) -> None:
    result = run(tmp_path, box3, api_key="not-the-key-123")
    assert result.code == 2
    assert "refused the api_key" in result.err and "HTTP 412" in result.err
    assert "/products.json" in result.err and "not-the-key-123" not in result.err + result.out
    assert [r.path for r in box3.requests] == ["/products.json"]


def test_a_server_that_ignores_paging_does_not_loop(box3: SandboxThread, tmp_path: Path) -> None:
    assert run(tmp_path, box3, page_size=2).code == 0
    before = states(tmp_path / "archive")
    answer(box3, {"products": [record(1001), record(1002)]})
    box3.reset_counts()
    result = run(tmp_path, box3, page_size=2)
    assert result.code == 1, result.err
    stale = [str(p) for p in range(1, 2 + paging.STALE_PAGES)]
    assert [q["page"] for q in list_requests(box3)] == stale
    failures = [line for line in result.err.splitlines() if line.startswith("failed:")]
    assert len(failures) == 1 and "acct: onpremise/products" in failures[0], result.err
    assert "incomplete" in failures[0] and f"page={stale[-1]}" in failures[0]
    assert "api_key=***" in failures[0] and API_KEY not in result.err + result.out
    for owner in ("1001", "1002"):
        assert_owner_archived(tmp_path / "archive", box3, "products", owner, record(int(owner)))
    assert "gone" not in states(tmp_path / "archive").values()  # 1003 is not: the list was cut
    assert states(tmp_path / "archive").keys() == before.keys()


def test_a_product_removed_upstream_is_marked_gone_and_kept(box3: SandboxThread,
                                                           tmp_path: Path) -> None:
    assert run(tmp_path, box3).code == 0
    archive = tmp_path / "archive"
    under = "onpremise/products/1002/"
    first = states(archive)
    vanishing = {k for k, s in first.items() if k.startswith(under) and s == "complete"}
    assert f"{under}product.json" in vanishing and len(vanishing) > 2
    box3.dataset.remove_owner("products", "1002")
    box3.reset_counts()
    assert run(tmp_path, box3).code == 0
    assert "/products/1002/assets.json" not in box3.counts
    now = states(archive)
    assert {k for k, s in now.items() if s == "gone"} == vanishing
    assert all(now[k] == s for k, s in first.items() if k not in vanishing)
    for key in vanishing:
        assert (archive / "data" / key).is_file(), key
    status = run_cli("status", archive)
    assert status.code == 0 and "gone" in status.out
    bagit.Bag(str(archive)).validate()


def test_with_since_only_what_is_under_a_vanished_product_is_gone(box3: SandboxThread,
                                                                 tmp_path: Path) -> None:
    assert run(tmp_path, box3).code == 0
    archive = tmp_path / "archive"
    first = states(archive)
    box3.dataset.remove_owner("products", "1003")
    # Nothing was edited after 2099: every assets listing comes back empty, so the assets of
    # 1001 and 1002 are simply not seen; the products list is whole all the same.
    result = run(tmp_path, box3, since="2099-01-01 00:00:00")
    assert result.code == 0, result.err
    now = states(archive)
    gone = {k for k, s in now.items() if s == "gone"}
    assert gone == {k for k, s in first.items()
                    if k.startswith("onpremise/products/1003/") and s == "complete"}
    assert "onpremise/products/1003/product.json" in gone
    assert all(now[k] == s for k, s in first.items() if k not in gone)


def test_beers_and_menu_items_all(tmp_path: Path) -> None:
    config = DatasetConfig(products=0, beers=2, menu_items=2, owner_list_shape="wrapped")
    with SandboxThread(config) as box:
        beers, items = sandbox_list(box, "beers")["beers"], sandbox_list(box, "menu_items")
        box.reset_counts()
        result = run(tmp_path, box, products=[], beers="all", menu_items="all", page_size=1)
        assert result.code == 0, result.err
        for kind, elements in (("beers", beers), ("menu_items", items["menu_items"])):
            asked = list_requests(box, kind)
            assert asked == [{"api_key": "***"}], asked  # one request, never paged
            singular = layout.OWNER_RECORDS[kind].removesuffix(".json")
            for element in elements:
                inner = element[singular]
                assert_owner_archived(tmp_path / "archive", box, kind, str(inner["id"]), inner)
        assert list_requests(box, "products") == []
    assert sorted(p.name for p in (tmp_path / "archive/data/onpremise/beers").iterdir()) == [
        "2001", "2002"]


def test_explicit_ids_of_one_kind_with_the_whole_list_of_another(tmp_path: Path) -> None:
    with SandboxThread(DatasetConfig(products=2, beers=2)) as box:
        result = run(tmp_path, box, beers=["2002"])
        assert result.code == 0, result.err
        paths = [r.path for r in box.requests if r.path.endswith(".json")]
    assert paths == ["/products.json", "/products/1001/assets.json",
                     "/products/1002/assets.json", "/beers/2002/assets.json"]
    beer = tmp_path / "archive/data/onpremise/beers/2002"
    assert (beer / str(box.dataset.asset_ids("beers", "2002")[0]) / "asset.json").is_file()
    assert not (beer / "beer.json").exists()  # only what a list gave has a record to keep


def test_the_product_record_is_kept_without_the_key(box3: SandboxThread, tmp_path: Path) -> None:
    leaky = record(1001, image=f"{box3.api_url}/img.png?api_key={API_KEY}",
                   note=f"shared with key {API_KEY}")
    answer(box3, {"products": [leaky]})
    assert run(tmp_path, box3).code == 0
    text = (tmp_path / "archive/data/onpremise/products/1001/product.json").read_text()
    assert API_KEY not in text
    saved = json.loads(text)
    assert saved["image"] == f"{box3.api_url}/img.png?api_key=***"
    assert saved["note"] == "shared with key ***"
    assert {k: v for k, v in saved.items() if k not in ("image", "note")} == record(1001)
