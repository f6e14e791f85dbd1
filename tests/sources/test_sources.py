"""sources: pure mapping of the API docs' example records, and paging against a fake JsonApi."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from assetvault import errors
from assetvault.archive import layout
from assetvault.config.jobs import OnpremiseJob, SpectrumJob, UrlsJob
from assetvault.models import Document, Entry, Item, ListingFailure, Pending
from assetvault.sources import Since, iter_entries, onpremise, paging, spectrum, urls

TOKEN = "tok-SECRET-123"
API_KEY = "key-SECRET-456"
ORG = "7000000000000300322"
BLOB = "https://stospectprodglobal.blob.core.windows.net/carhartt/embroidery"
CDN = "http://c448288.r88.cf2.rackcdn.com/uploads/beer_label_asset/61966"


def output(ref: str, ext: str, mime: str) -> dict[str, Any]:
    return {"id": 0, "convertedAssetId": None, "uri": f"{BLOB}/{ref}/{ref}R1.{ext.upper()}",
            "assetFormat": {"id": 1, "extension": f".{ext}", "mimeType": mime}}


def production_job(job_id: int, ref: str, modified: str) -> dict[str, Any]:
    return {
        "id": job_id, "uploadedAssetId": 19695342, "reference": ref, "status": "Completed",
        "result": {"id": job_id - 67, "lastModification": modified,
                   "outputs": [output(ref, "dst", "application/octet-stream"),
                               output(ref, "png", "image/png"),
                               output(ref, "pdf", "application/pdf")]},
        "specificationUri": f"{BLOB}/{ref}/{ref}R1.PDF",
        "dstUri": f"{BLOB}/{ref}/{ref}R1.DST",
        "lastModification": modified[:-3] + "000",
    }


def spectrum_record(rid: int = 1234, **changes: Any) -> dict[str, Any]:
    """The first record of the Spectrum docs' example, trimmed of fields nothing reads."""
    record: dict[str, Any] = {
        "id": rid, "uploadedAssetId": 19695342,
        "uploadedAssetUri": "https://cdn.spectrumcustomizer.com:443/assets/UserUpload/"
                            "b8873e1d-944f-490a-b0d8-0608f8039a37.png",
        "metaData": {"Url": "https://api.spectrumcustomizer.com/api/uploaded-assets/id/19695342"},
        "spectrumAssetReference": "CCG60521324002", "organizationIdentifier": ORG,
        "userFacingFileName": "white mba used",
        "productionJobs": [production_job(16797, "CCG60521324002", "2022-05-08T18:32:37.607"),
                           production_job(24305, "CCG60521324001", "2022-08-16T03:18:48.383")],
        "hasProductionJob": True, "clientHandle": "carhartt", "active": True,
        "lastModification": "2022-04-05T15:06:58.69",
    }
    record.update(changes)
    return record


def plain_record(rid: int) -> dict[str, Any]:
    """Like the docs' records 8059 and 8073: no production jobs."""
    return spectrum_record(rid, productionJobs=None, hasProductionJob=False,
                           uploadedAssetUri=f"https://cdn.example/assets/Square_{rid}.png")


def sjob(**changes: Any) -> SpectrumJob:
    fields: dict[str, Any] = {"name": "carhartt", "token": TOKEN, "client": "carhartt",
                              "organizations": (ORG,), "headers": (("X-Extra", "hdr-SECRET"),)}
    fields.update(changes)
    return SpectrumJob(**fields)


def listing(job: SpectrumJob | None = None) -> spectrum.Listing:
    job = job or sjob()
    return spectrum.Listing(job, ORG, spectrum.job_redactor(job))


def of(kind: type, entries: list[Entry]) -> list[Any]:
    return [e for e in entries if isinstance(e, kind)]


def paths(entries: list[Entry]) -> list[str]:
    return [str(e.path) for e in of(Item, entries)]


# --- Spectrum mapping ---------------------------------------------------------------------------

DIR = f"spectrum/carhartt/{ORG}/1234"


def test_spectrum_record_maps_to_document_original_and_outputs() -> None:
    entries = spectrum.map_record(listing(), spectrum_record(), 1)
    doc = entries[0]
    assert isinstance(doc, Document) and str(doc.path) == f"{DIR}/asset.json"
    assert json.loads(doc.body) == spectrum_record()
    assert doc.upstream_version == "2022-04-05T15:06:58.69"
    assert paths(entries) == [
        f"{DIR}/original.png",
        *(f"{DIR}/jobs/16797-CCG60521324002/CCG60521324002R1.{e}" for e in ("DST", "PNG", "PDF")),
        *(f"{DIR}/jobs/24305-CCG60521324001/CCG60521324001R1.{e}" for e in ("DST", "PNG", "PDF")),
    ]
    items = of(Item, entries)
    assert all(i.key == str(i.path) and i.job == "carhartt" for i in items)
    assert items[0].upstream_version == "2022-04-05T15:06:58.69"
    assert items[1].upstream_version == "2022-05-08T18:32:37.607"  # the result's
    assert items[4].upstream_version == "2022-08-16T03:18:48.383"
    assert not of(ListingFailure, entries)


def test_spectrum_formats_and_include() -> None:
    only_dst = spectrum.map_record(listing(sjob(formats=frozenset({"dst"}))), spectrum_record(), 1)
    assert [p.rsplit("/", 1)[1] for p in paths(only_dst)] == [
        "original.png", "CCG60521324002R1.DST", "CCG60521324001R1.DST"]
    originals = spectrum.map_record(listing(sjob(include=frozenset({"original"}))),
                                    spectrum_record(), 1)
    assert paths(originals) == [f"{DIR}/original.png"]
    outputs = spectrum.map_record(listing(sjob(include=frozenset({"outputs"}))),
                                  spectrum_record(), 1)
    assert len(paths(outputs)) == 6


def test_spectrum_null_jobs_null_result_empty_outputs() -> None:
    assert len(of(Item, spectrum.map_record(listing(), plain_record(8059), 1))) == 1
    record = spectrum_record()
    record["productionJobs"][0]["result"] = None  # its spec and dst URIs remain
    record["productionJobs"][1]["result"]["outputs"] = []
    got = [p.rsplit("/", 1)[1] for p in paths(spectrum.map_record(listing(), record, 1))]
    assert got == ["original.png", "CCG60521324002R1.PDF", "CCG60521324002R1.DST",
                   "CCG60521324001R1.PDF", "CCG60521324001R1.DST"]


def test_spectrum_inactive_is_metadata_only() -> None:
    entries = spectrum.map_record(listing(), spectrum_record(active=False), 1)
    assert [type(e) for e in entries] == [Document]
    entries = spectrum.map_record(listing(sjob(include_inactive=True)),
                                  spectrum_record(active=False), 1)
    assert len(of(Item, entries)) == 7


def test_spectrum_same_url_once_and_same_name_disambiguated() -> None:
    record = spectrum_record()
    jobs = record["productionJobs"]
    jobs[1]["result"]["outputs"][0]["uri"] = jobs[0]["result"]["outputs"][0]["uri"]
    jobs[1]["result"]["outputs"][1]["uri"] = f"{BLOB}/other/CCG60521324001R1.DST"
    items = of(Item, spectrum.map_record(listing(), record, 1))
    urls_ = [i.url for i in items]
    assert len(urls_) == len(set(urls_))
    assert len({i.path for i in items}) == len(items)
    second = [i for i in items if "24305" in str(i.path)]
    # other/…R1.DST, …R1.PDF, then dstUri's …R1.DST: the plain name goes to the smaller URL,
    # not to the first listed, so a listing in another order names them the same.
    names = {PurePosixPath(i.path).name: i.url for i in second}
    plain = "CCG60521324001R1.DST"
    assert names.pop("CCG60521324001R1.PDF")
    assert names.pop(plain) == record["productionJobs"][1]["dstUri"] < f"{BLOB}/other/{plain}"
    (tagged, url), = names.items()
    assert tagged.startswith("CCG60521324001R1~") and tagged.endswith(".DST")
    assert url == f"{BLOB}/other/{plain}"
    jobs[1]["result"]["outputs"].reverse()
    again = of(Item, spectrum.map_record(listing(), record, 1))
    assert sorted((i.path, i.url) for i in again) == sorted((i.path, i.url) for i in items)


def test_spectrum_original_without_extension_takes_it_from_content_type() -> None:
    record = spectrum_record(uploadedAssetUri="https://cdn.example/assets/blob", productionJobs=[])
    (item,) = of(Item, spectrum.map_record(listing(), record, 1))
    assert PurePosixPath(item.path).name == "original" and item.add_extension


def test_spectrum_document_is_scrubbed() -> None:
    record = spectrum_record(notes=f"token {TOKEN} header hdr-SECRET",
                             metaData={"Url": "https://h/x?api_key=abc123&a=1"})
    body = spectrum.map_record(listing(), record, 1)[0]
    assert isinstance(body, Document)
    text = body.body.decode()
    assert "SECRET" not in text and "abc123" not in text and "***" in text
    assert json.loads(text)["userFacingFileName"] == "white mba used"


def test_spectrum_bad_records_fail_alone() -> None:
    (failure,) = spectrum.map_record(listing(), ["not", "a", "record"], 3)
    assert isinstance(failure, ListingFailure) and failure.key.endswith("#3")
    (failure,) = spectrum.map_record(listing(), {"uploadedAssetUri": "https://x/a.png"}, 4)
    assert isinstance(failure, ListingFailure) and "no id" in failure.error
    entries = spectrum.map_record(listing(), spectrum_record(productionJobs="oops"), 1)
    assert [type(e) for e in entries] == [Document, Item, ListingFailure]
    failure = entries[2]
    assert isinstance(failure, ListingFailure) and failure.key == DIR and TOKEN not in failure.url


# --- Spectrum paging ----------------------------------------------------------------------------

Call = tuple[str, dict[str, str], dict[str, str], frozenset[int]]


class FakeApi:
    """A stand-in for http.JobApi: answers from a function of (url, params), records calls."""

    def __init__(self, answer: Callable[[str, Mapping[str, str]], Any]) -> None:
        self.answer = answer
        self.calls: list[Call] = []

    async def get_json(self, url: str, *, params: Mapping[str, str] | None = None,
                       headers: Mapping[str, str] | None = None,
                       retry_statuses: frozenset[int] = frozenset()) -> Any:
        self.calls.append((url, dict(params or {}), dict(headers or {}), retry_statuses))
        result = self.answer(url, params or {})
        if isinstance(result, BaseException):
            raise result
        return copy.deepcopy(result)

    async def get_body(self, url: str, *, params: Mapping[str, str] | None = None,
                       headers: Mapping[str, str] | None = None,
                       retry_statuses: frozenset[int] = frozenset()) -> tuple[bytes, str]:
        body = await self.get_json(url, params=params, headers=headers,
                                   retry_statuses=retry_statuses)
        return json.dumps(body).encode(), "application/json"


def envelope(records: list[Any], error: Any = None) -> dict[str, Any]:
    return {"lastModification": "2023-06-29T19:21:06.8069348+00:00", "error": error,
            "apiVersion": "3.0.23173.1", "hash": "x", "contents": records}


def paged(records: list[Any]) -> Callable[[str, Mapping[str, str]], Any]:
    def answer(url: str, params: Mapping[str, str]) -> Any:
        page, size = int(params["page"]), int(params["pageSize"])
        return envelope(records[(page - 1) * size: page * size])
    return answer


def collect(stream: AsyncIterator[Entry]) -> list[Entry]:
    async def run() -> list[Entry]:
        return [entry async for entry in stream]
    return asyncio.run(run())


def test_spectrum_pages_until_a_short_page() -> None:
    api = FakeApi(paged([plain_record(i) for i in range(1, 251)]))
    entries = collect(iter_entries(sjob(page_size=100), api))
    assert len(of(Document, entries)) == 250 and len(of(Item, entries)) == 250
    assert [c[1] for c in api.calls] == [{"page": str(p), "pageSize": "100"} for p in (1, 2, 3)]
    url, _, headers, retry = api.calls[0]
    assert url == ("https://api.spectrumcustomizer.com/api/assets/saved/client/carhartt/"
                   f"organization/{ORG}")
    assert headers == {"SPECTRUM_API_TOKEN": TOKEN, "X-Extra": "hdr-SECRET"}
    assert retry == frozenset({403})


def test_spectrum_exact_multiple_ends_on_empty_page() -> None:
    api = FakeApi(paged([plain_record(i) for i in range(1, 201)]))
    assert len(of(Document, collect(iter_entries(sjob(page_size=100), api)))) == 200
    assert len(api.calls) == 3


def test_spectrum_server_ignoring_paging_does_not_loop() -> None:
    records = [plain_record(i) for i in range(1, 11)]
    api = FakeApi(lambda url, params: envelope(records))
    entries = collect(iter_entries(sjob(page_size=10), api))
    assert len(of(Document, entries)) == 10 and len(api.calls) == 1 + paging.STALE_PAGES
    (failure,) = of(ListingFailure, entries)
    assert entries[-1] == failure and "incomplete" in failure.error
    assert f"page={1 + paging.STALE_PAGES}" in failure.url


def test_spectrum_org_failures_do_not_stop_other_orgs() -> None:
    def answer(url: str, params: Mapping[str, str]) -> Any:
        org = url.rsplit("/", 1)[1]
        if org == "bad-envelope":
            return envelope([], error="organization not found")
        if org == "not-json":
            return errors.BadResponseError("body is not JSON", url=url)
        if org == "gone":
            return errors.HTTPStatusError("HTTP 404 Not Found", url=url, status=404)
        if org == "weird":
            return ["a", "list"]
        return envelope([plain_record(1)])
    job = sjob(organizations=("bad-envelope", "not-json", "gone", "weird", ORG))
    entries = collect(iter_entries(job, FakeApi(answer)))
    failures = of(ListingFailure, entries)
    assert [f.key for f in failures] == [f"spectrum/carhartt/{o}" for o in job.organizations[:4]]
    assert "organization not found" in failures[0].error
    assert "404" in failures[2].error
    assert all(TOKEN not in f.url and "page=1" in f.url for f in failures)
    assert len(of(Document, entries)) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_spectrum_refusal_is_a_credentials_error(status: int) -> None:
    api = FakeApi(lambda url, params: errors.HTTPStatusError("refused", url=url, status=status))
    with pytest.raises(errors.CredentialsError) as info:
        collect(iter_entries(sjob(), api))
    assert TOKEN not in info.value.message
    if status == 403:
        assert "token" in info.value.message and "100 requests per 60 s" in info.value.message


def test_spectrum_bad_record_does_not_stop_the_page() -> None:
    api = FakeApi(lambda url, params: envelope([plain_record(1), 42, plain_record(2)]))
    entries = collect(iter_entries(sjob(), api))
    assert len(of(Document, entries)) == 2 and len(of(ListingFailure, entries)) == 1


# --- OnPremise mapping --------------------------------------------------------------------------


def onpremise_asset(**changes: Any) -> dict[str, Any]:
    """The asset of the OnPremise docs' sample response."""
    asset: dict[str, Any] = {
        "id": 1966, "type": "ImageAsset", "subtype": "WineLabelAsset", "display_position": 1,
        "versions": {
            "ipad_one_up_thumb": {"url": f"{CDN}/ipad_one_up_thumb_1135210_image.jpg"},
            "web_thumb": {"url": f"{CDN}/web_thumb_1135210_image.jpg"},
            "ipad_list": {"url": f"{CDN}/ipad_list_1135210_image.jpg"},
        },
        "asset_content_type": "image/jpeg", "asset_file_size": 8785,
        "updated_at": "2011-09-10T12:43:04-07:00", "processed": True, "status": 0,
        "original_url": f"{CDN}/1135210_image.jpg", "product_id": 1001,
    }
    asset.update(changes)
    return asset


def ojob(**changes: Any) -> OnpremiseJob:
    fields: dict[str, Any] = {"name": "wine", "api_key": API_KEY, "products": ("1001",)}
    fields.update(changes)
    return OnpremiseJob(**fields)


def owner(job: OnpremiseJob | None = None) -> onpremise.Owner:
    job = job or ojob()
    return onpremise.Owner(job, "products", "1001", onpremise.job_redactor(job))


ODIR = "onpremise/products/1001/1966"


def test_onpremise_sample_asset() -> None:
    entries = onpremise.map_asset(owner(), onpremise_asset(), 1)
    doc = entries[0]
    assert isinstance(doc, Document) and str(doc.path) == f"{ODIR}/asset.json"
    assert json.loads(doc.body) == onpremise_asset()
    assert doc.upstream_version == "2011-09-10T12:43:04-07:00"
    assert paths(entries) == [f"{ODIR}/original.jpg", f"{ODIR}/versions/ipad_one_up_thumb.jpg",
                              f"{ODIR}/versions/web_thumb.jpg", f"{ODIR}/versions/ipad_list.jpg"]
    original, *versions = of(Item, entries)
    assert original.expected_size == 8785 and original.etag_is_md5
    assert original.upstream_version == "2011-09-10T12:43:04-07:00"
    assert all(v.etag_is_md5 and v.expected_size is None for v in versions)
    assert versions[1].url == f"{CDN}/web_thumb_1135210_image.jpg"


def test_onpremise_versions_sharing_a_name_are_named_whatever_their_order() -> None:
    # "thumb" of a .png URL and "thumb.png" of a URL without an extension: one file name.
    versions = {"thumb": {"url": f"{CDN}/b/thumb.png"}, "thumb.png": {"url": f"{CDN}/a/t"}}
    paths = []
    for ordered in (versions, dict(reversed(versions.items()))):
        items = of(Item, onpremise.map_asset(owner(), onpremise_asset(versions=ordered), 1))
        paths.append(sorted((i.path, i.url) for i in items))
    assert paths[0] == paths[1]
    assert (f"{ODIR}/versions/thumb.png", f"{CDN}/a/t") in paths[0]  # the smaller URL


def test_onpremise_filters() -> None:
    entries = onpremise.map_asset(owner(ojob(versions=frozenset({"web_thumb"}))),
                                  onpremise_asset(), 1)
    assert [p.rsplit("/", 1)[1] for p in paths(entries)] == ["original.jpg", "web_thumb.jpg"]
    entries = onpremise.map_asset(owner(ojob(include=frozenset({"versions"}))),
                                  onpremise_asset(), 1)
    assert len(paths(entries)) == 3


def test_onpremise_unprocessed_is_pending() -> None:
    entries = onpremise.map_asset(owner(), onpremise_asset(processed=False), 1)
    pending = of(Pending, entries)
    assert not of(Item, entries) and len(pending) == 4
    assert pending[0].key == f"{ODIR}/original.jpg"
    assert all(p.reason == "not processed upstream yet" for p in pending)


def test_onpremise_deleted_is_metadata_only() -> None:
    entries = onpremise.map_asset(owner(), onpremise_asset(status=1, processed=False), 1)
    assert [type(e) for e in entries] == [Document]
    entries = onpremise.map_asset(owner(ojob(include_deleted=True)),
                                  onpremise_asset(status=1), 1)
    assert len(of(Item, entries)) == 4


def test_onpremise_versions_as_documented_array() -> None:
    versions = [{"identifier": "web_thumb", "url": f"{CDN}/w.jpg"},
                {"name": "big", "url": f"{CDN}/b.png"}, {"url": "x"}, "junk"]
    entries = onpremise.map_asset(owner(), onpremise_asset(versions=versions), 1)
    assert paths(entries)[1:] == [f"{ODIR}/versions/web_thumb.jpg", f"{ODIR}/versions/big.png"]
    (failure,) = of(ListingFailure, entries)
    assert failure.key == ODIR and "no name" in failure.error


def test_onpremise_extension_and_size_fallbacks() -> None:
    asset = onpremise_asset(original_url=f"{CDN}/download?id=1", asset_content_type="image/png",
                            asset_file_size=True, versions=None)
    (item,) = of(Item, onpremise.map_asset(owner(), asset, 1))
    assert PurePosixPath(item.path).name == "original.png" and item.expected_size is None
    asset = onpremise_asset(original_url=f"{CDN}/x", asset_content_type=None, versions={},
                            asset_file_size=-1)
    (item,) = of(Item, onpremise.map_asset(owner(), asset, 1))
    assert PurePosixPath(item.path).name == "original" and item.add_extension
    assert item.expected_size is None


def test_a_ready_asset_without_its_original_is_said_not_skipped() -> None:
    # Its versions are archived and the asset counts as listed, but the file asked for is
    # missing upstream: a listing problem, as a version without a URL is.
    for missing in (None, ""):
        entries = onpremise.map_asset(owner(), onpremise_asset(original_url=missing), 1)
        (failure,) = of(ListingFailure, entries)
        assert failure.key == ODIR and "original_url is missing" in failure.error
        assert not any(PurePosixPath(i.path).name.startswith("original") for i in of(Item, entries))
    # Not ready yet, or deleted: it may well have none.
    for state in ({"processed": False}, {"status": 1}):
        entries = onpremise.map_asset(owner(ojob(include_deleted=True)),
                                      onpremise_asset(original_url=None, **state), 1)
        assert not of(ListingFailure, entries)


def test_onpremise_listing_shapes() -> None:
    assert onpremise.listing_assets([1]) == [1]
    assert onpremise.listing_assets({"assets": [2]}) == [2]
    bad: Any
    for bad in ({"assets": None}, "x", None, {"other": []}):
        assert isinstance(onpremise.listing_assets(bad), str)


# --- OnPremise listings -------------------------------------------------------------------------


def test_onpremise_requests_every_owner() -> None:
    api = FakeApi(lambda url, params: {"assets": [onpremise_asset()]} if "products" in url
                  else [onpremise_asset(id=7)])
    job = ojob(beers=("b1",), menu_items=("m/1",), headers=(("X-A", "v"),))
    entries = collect(iter_entries(job, api, since=Since("2024-01-02 03:04:05")))
    assert [c[0] for c in api.calls] == [
        "https://dashboard.onpremisewine.com/products/1001/assets.json",
        "https://dashboard.onpremisewine.com/beers/b1/assets.json",
        "https://dashboard.onpremisewine.com/menu_items/m%2F1/assets.json"]
    _, params, headers, _ = api.calls[0]
    assert params == {"api_key": API_KEY, "last_updated_at": "2024-01-02 03:04:05"}
    assert headers == {"X-TASTEVIN-VERSION": "1.2", "X-A": "v"}
    assert [str(d.path) for d in of(Document, entries)][1:] == [
        "onpremise/beers/b1/7/asset.json",
        f"onpremise/menu_items/m_1~{layout.short_hash('m/1')}/7/asset.json"]


def test_onpremise_without_since_sends_no_last_updated_at() -> None:
    api = FakeApi(lambda url, params: [])
    assert collect(iter_entries(ojob(), api)) == []
    assert api.calls[0][1] == {"api_key": API_KEY}


@pytest.mark.parametrize("status", [401, 403, 412])
def test_onpremise_refusal_is_a_credentials_error(status: int) -> None:
    api = FakeApi(lambda url, params: errors.HTTPStatusError("no", url=url, status=status))
    with pytest.raises(errors.CredentialsError) as info:
        collect(iter_entries(ojob(), api))
    assert API_KEY not in info.value.message and "api_key" in info.value.message


def test_onpremise_failed_listing_does_not_stop_others() -> None:
    def answer(url: str, params: Mapping[str, str]) -> Any:
        if "/1001/" in url:
            return errors.HTTPStatusError("HTTP 404 Not Found", url=url, status=404)
        if "/1002/" in url:
            return {"error": "what"}
        return [onpremise_asset(), onpremise_asset(), "junk"]
    entries = collect(iter_entries(ojob(products=("1001", "1002", "1003")), FakeApi(answer)))
    failures = of(ListingFailure, entries)
    assert [f.key for f in failures] == ["onpremise/products/1001", "onpremise/products/1002",
                                         "onpremise/products/1003#3"]
    assert all(API_KEY not in f.url and "api_key=***" in f.url for f in failures)
    assert len(of(Document, entries)) == 1  # listed twice, archived once


# --- urls ---------------------------------------------------------------------------------------


def ujob(tmp_path: Path, text: str, name: str = "list.txt") -> UrlsJob:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return UrlsJob(name="legacy", urls_file=path)


def items_of(job: UrlsJob) -> list[Item]:
    entries = collect(iter_entries(job, FakeApi(lambda url, params: None)))
    assert all(isinstance(e, Item) for e in entries)
    return of(Item, entries)


def test_urls_text(tmp_path: Path) -> None:
    job = ujob(tmp_path, "# comment\n\nhttps://x.com/a/b.png\r\n  https://x.com/c  \nftp://h/f\n")
    items = items_of(job)
    assert [(i.url, str(i.path)) for i in items] == [
        ("https://x.com/a/b.png", "urls/legacy/x.com/a/b.png"),
        ("https://x.com/c", "urls/legacy/x.com/c"),
        ("ftp://h/f", "urls/legacy/h/f")]
    assert all(i.key == str(i.path) and i.job == "legacy" and i.expected_size is None
               for i in items)


def test_urls_csv(tmp_path: Path) -> None:
    text = ("\ufeffURL,path,comment\nhttps://x.com/a.png,img/one.png,x\n"
            "https://x.com/b.png,,y\n,empty-url.bin\n\n\"https://x.com/q?a=1,2\",../up.png\n")
    items = items_of(ujob(tmp_path, text, "list.csv"))
    assert [(i.url, str(i.path)) for i in items[:3]] == [
        ("https://x.com/a.png", "urls/legacy/img/one.png"),
        ("https://x.com/b.png", "urls/legacy/x.com/b.png"),
        ("", "urls/legacy/empty-url.bin")]
    assert items[3].url == "https://x.com/q?a=1,2"
    parts = PurePosixPath(items[3].path).parts
    assert parts[:2] == ("urls", "legacy") and ".." not in parts


def test_urls_duplicates_and_file_folder_clashes(tmp_path: Path) -> None:
    text = "\n".join(["https://x.com/a", "https://x.com/a", "https://x.com/a?v=2",
                      "https://x.com/a/b", "https://x.com/a/c", "https://x.com/d/e",
                      "https://x.com/d"])
    items = items_of(ujob(tmp_path, text))
    got = [str(i.path) for i in items]
    assert len(set(got)) == len(got)
    files = set(got)
    for p in got:  # no file is also a folder of another file
        assert not any(str(parent) in files for parent in PurePosixPath(p).parents)
    assert got[0] == "urls/legacy/x.com/a"
    assert PurePosixPath(got[3]).parent == PurePosixPath(got[4]).parent  # renamed folder shared
    assert got[5] == "urls/legacy/x.com/d/e" and got[6].startswith("urls/legacy/x.com/d~")
    assert [str(i.path) for i in items_of(ujob(tmp_path, text))] == got  # deterministic


def test_urls_header_detection() -> None:
    assert urls.csv_columns("url,path\n") == (0, 1)
    assert urls.csv_columns(" Path , URL ,x\r\n") == (1, 0)
    assert urls.csv_columns("https://x.com/url,path\n") is None
    assert urls.csv_columns("") is None


def test_urls_many_lines_stream_in_batches(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urls, "BATCH", 7)
    text = "".join(f"https://h.example/f/{n}.bin\n" for n in range(2500))
    items = items_of(ujob(tmp_path, text))
    assert len(items) == 2500 and PurePosixPath(items[-1].path).name == "2499.bin"


def test_urls_missing_file_is_a_listing_failure(tmp_path: Path) -> None:
    job = UrlsJob(name="legacy", urls_file=tmp_path / "nope.txt")
    (failure,) = collect(iter_entries(job, FakeApi(lambda url, params: None)))
    assert isinstance(failure, ListingFailure) and failure.key == "urls/legacy"
    assert "cannot read" in failure.error


def test_versions_in_every_documented_shape() -> None:
    from assetvault.sources.onpremise import parse_versions

    url = "http://cdn/x/web_thumb.jpg"
    for shape in ({"web_thumb": {"url": url}}, [{"web_thumb": {"url": url}}],
                  [{"id": "web_thumb", "url": url}], [{"identifier": "web_thumb", "url": url}],
                  [{"name": "web_thumb", "url": url}]):
        problems: list[str] = []
        assert parse_versions(shape, problems) == [("web_thumb", url)], shape
        assert problems == []
    problems = []
    assert parse_versions([{"url": url}], problems) == [] and problems == ["a version has no name"]
