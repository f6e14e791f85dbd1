"""The sandbox over real sockets: both APIs, the file host, faults, and the dataset's promises."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import urllib.request
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

import aiohttp
import pytest

from assetvault.sandbox import Dataset, DatasetConfig, FaultPlan, Sandbox, SandboxThread, serve
from assetvault.sandbox import files as sandbox_files
from assetvault.sandbox import spectrum as sandbox_spectrum
from assetvault.sandbox.formats import BLOCK, padding_block

TOKEN = {"SPECTRUM_API_TOKEN": "sandbox-spectrum-token"}
TASTEVIN = {"X-TASTEVIN-VERSION": "1.2"}
KEY = "sandbox-onpremise-key"
ORG = "7000000000000300322"
Scenario = Callable[[Sandbox, aiohttp.ClientSession], Awaitable[None]]


def run(scenario: Scenario, config: DatasetConfig | None = None, faults: str | None = None) -> None:
    """Run ``scenario`` against a fresh sandbox, bounded in time."""

    async def main() -> None:
        async with Sandbox(config, faults=faults) as sandbox, aiohttp.ClientSession() as session:
            await scenario(sandbox, session)

    asyncio.run(asyncio.wait_for(main(), timeout=20))


def spectrum_url(sb: Sandbox, org: str = ORG, query: str = "") -> str:
    return f"{sb.api_url}/api/assets/saved/client/carhartt/organization/{org}{query}"


def onpremise_url(sb: Sandbox, owner: str = "1001", kind: str = "products", extra: str = "") -> str:
    return f"{sb.api_url}/{kind}/{owner}/assets.json?api_key={KEY}{extra}"


async def get_json(session: aiohttp.ClientSession, url: str,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with session.get(url, headers=headers) as response:
        return response.status, await response.json(content_type=None)


def file_urls(record: dict[str, Any]) -> list[str]:
    urls = [record["uploadedAssetUri"]]
    for job in record["productionJobs"] or []:
        if job["result"]:
            urls += [output["uri"] for output in job["result"]["outputs"]]
    return urls


async def all_records(sb: Sandbox, session: aiohttp.ClientSession) -> list[dict[str, Any]]:
    records = []
    for org in sb.dataset.organization_ids():
        _, body = await get_json(session, spectrum_url(sb, org, "?pageSize=100"), TOKEN)
        records += body["contents"]
    return records


# -- Spectrum -------------------------------------------------------------------------------


def test_spectrum_paging_and_shape() -> None:
    doc_keys = {"id", "uploadedAssetId", "uploadedAssetUri", "metaData", "spectrumAssetReference",
                "clientAccountReference", "organizationIdentifier", "userFacingFileName",
                "productionJobs", "hasProductionJob", "clientHandle", "active", "createdDate",
                "lastModification"}

    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        status, first = await get_json(session, spectrum_url(sb), TOKEN)
        assert status == 200
        assert set(first) == {"lastModification", "error", "apiVersion", "hash", "contents"}
        assert first["error"] is None and len(first["contents"]) == 25
        _, second = await get_json(session, spectrum_url(sb, query="?page=2"), TOKEN)
        assert len(second["contents"]) == 5
        pages = []
        for page in range(1, 5):
            _, body = await get_json(session, spectrum_url(sb, query=f"?page={page}&pageSize=10"),
                                     TOKEN)
            pages.append(body["contents"])
        assert [len(p) for p in pages] == [10, 10, 10, 0]
        ids = [r["id"] for p in pages for r in p]
        assert ids == [r["id"] for r in first["contents"] + second["contents"]]
        assert len(set(ids)) == 30
        assert all(set(r) == doc_keys for r in first["contents"])
        assert all(r["organizationIdentifier"] == ORG for r in first["contents"])

    run(scenario, DatasetConfig(assets_per_org=30))


def test_spectrum_variety_and_urls() -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        records = await all_records(sb, session)
        jobs = [j for r in records for j in r["productionJobs"] or []]
        assert any(r["productionJobs"] is None for r in records)
        assert any(not r["active"] for r in records)
        assert any(j["result"] is None for j in jobs)
        assert any(j["result"] and j["result"]["outputs"] == [] for j in jobs)
        outputs = [o for j in jobs if j["result"] for o in j["result"]["outputs"]]
        extensions = {o["assetFormat"]["extension"] for o in outputs}
        assert {".dst", ".png", ".pdf"} <= extensions and len(extensions) > 3
        for job in jobs:
            uris = {o["uri"] for o in (job["result"] or {}).get("outputs", [])}
            for key in ("specificationUri", "dstUri"):
                assert job[key] is None or job[key] in uris
        job_ids = [j["id"] for j in jobs]
        assert len(job_ids) == len(set(job_ids))
        assert all(r["uploadedAssetUri"].startswith(sb.files_url + "/cdn/assets/UserUpload/")
                   for r in records)
        blobs = f"{sb.files_url}/blob/carhartt/embroidery/"
        assert all(o["uri"].startswith(blobs) for o in outputs)

    run(scenario, DatasetConfig(organizations=3, assets_per_org=10))


def test_spectrum_refuses_without_token_and_past_the_rate_limit() -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        assert (await get_json(session, spectrum_url(sb)))[0] == 403
        assert (await get_json(session, spectrum_url(sb), {"SPECTRUM_API_TOKEN": "nope"}))[0] == 403
        statuses = [(await get_json(session, spectrum_url(sb), TOKEN))[0] for _ in range(4)]
        assert statuses == [200, 200, 200, 403]
        other = spectrum_url(sb, "7000000000000300323")
        assert (await get_json(session, other, TOKEN))[0] == 200

    run(scenario, DatasetConfig(spectrum_limit=3, spectrum_window=60))


def test_spectrum_unknown_organization_is_an_envelope_error() -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        status, body = await get_json(session, spectrum_url(sb, "123"), TOKEN)
        assert status == 200 and body["error"] and body["contents"] == []
        url = f"{sb.api_url}/api/assets/saved/client/other/organization/{ORG}"
        assert (await get_json(session, url, TOKEN))[1]["error"]

    run(scenario)


# -- OnPremise ------------------------------------------------------------------------------


def test_onpremise_needs_key_and_version() -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        assert (await get_json(session, onpremise_url(sb)))[0] == 412
        bad = onpremise_url(sb).replace(KEY, "wrong")
        assert (await get_json(session, bad, TASTEVIN))[0] == 412
        no_key = f"{sb.api_url}/products/1001/assets.json"
        assert (await get_json(session, no_key, TASTEVIN))[0] == 412
        assert (await get_json(session, onpremise_url(sb, "9999"), TASTEVIN))[0] == 404
        status, body = await get_json(session, onpremise_url(sb, "2001", "beers"), TASTEVIN)
        assert status == 200 and len(body["assets"]) == 3

    run(scenario)


def test_onpremise_shape_variety_and_sizes() -> None:
    doc_keys = {"id", "type", "subtype", "display_position", "versions", "asset_content_type",
                "asset_file_size", "updated_at", "processed", "status", "original_url",
                "product_id"}

    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        assets = []
        for owner in sb.dataset.owner_ids("products"):
            assets += (await get_json(session, onpremise_url(sb, owner), TASTEVIN))[1]["assets"]
        assert all(set(a) == doc_keys for a in assets)
        assert any(not a["processed"] for a in assets) and any(a["status"] == 1 for a in assets)
        assert {"web_thumb", "ipad_list", "ipad_one_up_thumb"} <= {
            name for a in assets for name in a["versions"]}
        for asset in assets[:4]:
            async with session.get(asset["original_url"]) as response:
                body = await response.read()
                assert len(body) == asset["asset_file_size"]
                assert response.headers["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
                assert "Content-Encoding" not in response.headers

    run(scenario, DatasetConfig(products=4))


def test_onpremise_last_updated_at_and_touch() -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        _, body = await get_json(session, onpremise_url(sb), TASTEVIN)
        moments = sorted(datetime.fromisoformat(a["updated_at"]) for a in body["assets"])
        cut = moments[len(moments) // 2].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        _, newer = await get_json(session, onpremise_url(sb, extra=f"&last_updated_at={cut}"),
                                  TASTEVIN)
        expected = [m for m in moments if m.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") > cut]
        assert len(newer["assets"]) == len(expected) < len(moments)
        since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        _, none = await get_json(session, onpremise_url(sb, extra=f"&last_updated_at={since}"),
                                 TASTEVIN)
        assert none["assets"] == []
        asset = body["assets"][0]
        before = sb.dataset.file_bytes(asset["original_url"])
        sb.dataset.touch_onpremise("products", "1001", asset["id"])
        _, touched = await get_json(session, onpremise_url(sb, extra=f"&last_updated_at={since}"),
                                    TASTEVIN)
        assert [a["id"] for a in touched["assets"]] == [asset["id"]]
        after = sb.dataset.file_bytes(asset["original_url"])
        assert after != before and touched["assets"][0]["asset_file_size"] == len(after)
        async with session.get(asset["original_url"]) as response:
            assert await response.read() == after

    run(scenario)


def test_onpremise_processed_and_remove() -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        ids = sb.dataset.asset_ids("products", "1001")
        since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        sb.dataset.set_processed("products", "1001", ids[0], False)
        sb.dataset.remove_onpremise("products", "1001", ids[1])
        _, body = await get_json(session, onpremise_url(sb), TASTEVIN)
        by_id = {a["id"]: a for a in body["assets"]}
        assert ids[1] not in by_id and by_id[ids[0]]["processed"] is False
        _, newer = await get_json(session, onpremise_url(sb, extra=f"&last_updated_at={since}"),
                                  TASTEVIN)
        assert [a["id"] for a in newer["assets"]] == [ids[0]]
        version = next(iter(by_id[ids[0]]["versions"].values()))["url"]
        async with session.get(version) as response:
            assert response.status == 404

    run(scenario)


# -- OnPremise account lists ----------------------------------------------------------------


def list_url(sb: Sandbox, kind: str = "products", extra: str = "") -> str:
    return f"{sb.api_url}/{kind}.json?api_key={KEY}{extra}"


FULL = "&last_updated_at=1970-01-01%2000:00:00"


def test_products_list_pages_by_the_api_rules() -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        status, everything = await get_json(session, list_url(sb), TASTEVIN)
        products = everything["products"]
        assert status == 200 and [p["id"] for p in products] == list(range(1001, 1006))
        assert all({"id", "updated_at", "name"} <= set(p) for p in products)
        assert [str(p["id"]) for p in products] == sb.dataset.owner_ids("products")
        pages = []
        for page in (1, 2, 3):
            extra = f"&per_page=2&page={page}" + (FULL if page > 1 else "")
            pages.append((await get_json(session, list_url(sb, extra=extra), TASTEVIN))[1])
        assert [p for body in pages for p in body["products"]] == products
        assert [len(body["products"]) for body in pages] == [2, 2, 1]
        # Without per_page, page means nothing: everything in one answer.
        assert (await get_json(session, list_url(sb, extra="&page=2"), TASTEVIN))[1] == everything
        # The same records on every call: the seed decides them.
        assert (await get_json(session, list_url(sb), TASTEVIN))[1] == everything

    run(scenario, DatasetConfig(products=5))


def test_a_later_page_without_last_updated_at_is_refused() -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        status, body = await get_json(session, list_url(sb, extra="&per_page=2&page=2"),
                                      TASTEVIN)
        assert status == 400 and "last_updated_at" in body["error"]
        status, _ = await get_json(session, list_url(sb, extra="&per_page=2&page=1"), TASTEVIN)
        assert status == 200
        status, body = await get_json(session, list_url(sb, extra="&per_page=0"), TASTEVIN)
        assert status == 400 and "per_page" in body["error"]
        bad_since = "&last_updated_at=yesterday"
        assert (await get_json(session, list_url(sb, extra=bad_since), TASTEVIN))[0] == 400

    run(scenario, DatasetConfig(products=5))


def test_lists_need_key_and_version() -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        for kind in ("products", "beers", "menu_items"):
            assert (await get_json(session, list_url(sb, kind)))[0] == 412
            wrong = list_url(sb, kind).replace(KEY, "wrong")
            assert (await get_json(session, wrong, TASTEVIN))[0] == 412
        async with session.get(list_url(sb, "restaurants"), headers=TASTEVIN) as response:
            assert response.status == 404  # restaurants have no list

    run(scenario)


def test_last_updated_at_filters_the_list_strictly_after() -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        _, body = await get_json(session, list_url(sb), TASTEVIN)
        moments = sorted(datetime.fromisoformat(p["updated_at"]).astimezone(UTC)
                         for p in body["products"])
        cut = moments[3].strftime("%Y-%m-%d %H:%M:%S")
        _, newer = await get_json(session, list_url(sb, extra=f"&last_updated_at={cut}"),
                                  TASTEVIN)
        kept = sorted(datetime.fromisoformat(p["updated_at"]).astimezone(UTC)
                      for p in newer["products"])
        assert kept == [m for m in moments if m > moments[3]] and len(kept) == 4
        paged = f"&last_updated_at={cut}&per_page=3&page=2"
        _, second = await get_json(session, list_url(sb, extra=paged), TASTEVIN)
        assert second["products"] == newer["products"][3:]

    run(scenario, DatasetConfig(products=8))


@pytest.mark.parametrize("shape", ["object", "wrapped", "bare"])
def test_list_shapes(shape: str) -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        for kind, singular, first in (("products", "product", 1001), ("beers", "beer", 2001),
                                      ("menu_items", "menu_item", 4001)):
            _, body = await get_json(session, list_url(sb, kind), TASTEVIN)
            if shape == "bare":
                elements = body
            else:
                assert list(body) == [kind]
                elements = body[kind]
            records = [e[singular] if shape == "wrapped" else e for e in elements]
            assert [r["id"] for r in records] == [first, first + 1]

    run(scenario, DatasetConfig(products=2, beers=2, menu_items=2, owner_list_shape=shape))


def test_a_removed_owner_leaves_the_list_and_its_assets_404() -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        _, before = await get_json(session, onpremise_url(sb, "1002"), TASTEVIN)
        sb.dataset.remove_owner("products", "1002")
        _, body = await get_json(session, list_url(sb), TASTEVIN)
        assert [p["id"] for p in body["products"]] == [1001, 1003]
        _, page = await get_json(session, list_url(sb, extra="&per_page=1&page=2" + FULL),
                                 TASTEVIN)
        assert [p["id"] for p in page["products"]] == [1003]
        assert (await get_json(session, onpremise_url(sb, "1002"), TASTEVIN))[0] == 404
        async with session.get(before["assets"][0]["original_url"]) as response:
            assert response.status == 404
        assert sb.dataset.owner_ids("products") == ["1001", "1003"]
        with pytest.raises(KeyError):
            sb.dataset.remove_owner("products", "1002")

    run(scenario, DatasetConfig(products=3))


def test_a_list_can_be_made_to_answer_anything() -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        sb.dataset.set_list_answer("products", (500, "text/html", b"<html>oops</html>"))
        async with session.get(list_url(sb, extra="&per_page=1&page=1"),
                               headers=TASTEVIN) as response:
            assert response.status == 500 and response.content_type == "text/html"
            assert await response.read() == b"<html>oops</html>"
        assert (await get_json(session, list_url(sb, "beers"), TASTEVIN))[0] == 200
        sb.dataset.set_list_answer("products", None)
        assert (await get_json(session, list_url(sb), TASTEVIN))[0] == 200

    run(scenario)


def test_owner_list_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="owner_list_shape"):
        DatasetConfig(owner_list_shape="xml")


# -- files ----------------------------------------------------------------------------------


async def fetch(session: aiohttp.ClientSession, url: str,
                headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    async with session.get(url, headers=headers) as response:
        return response.status, response.headers, await response.read()


def test_ranges_and_if_range() -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        record = (await all_records(sb, session))[0]
        url = record["uploadedAssetUri"]
        status, headers, body = await fetch(session, url)
        size = len(body)
        assert status == 200 and int(headers["Content-Length"]) == size
        assert headers["Accept-Ranges"] == "bytes" and body == sb.dataset.file_bytes(url)
        for spec, part in (("bytes=5-14", body[5:15]), ("bytes=100-", body[100:]),
                           ("bytes=-7", body[-7:])):
            status, headers, got = await fetch(session, url, {"Range": spec})
            assert status == 206 and got == part
            assert headers["Content-Range"].endswith(f"/{size}")
        status, headers, _ = await fetch(session, url, {"Range": f"bytes={size}-"})
        assert status == 416 and headers["Content-Range"] == f"bytes */{size}"
        etag, modified = headers["ETag"], headers["Last-Modified"]
        ranged = {"Range": "bytes=10-"}
        assert (await fetch(session, url, {**ranged, "If-Range": etag}))[0] == 206
        assert (await fetch(session, url, {**ranged, "If-Range": modified}))[0] == 206
        status, _, got = await fetch(session, url, {**ranged, "If-Range": '"stale"'})
        assert status == 200 and got == body
        old = format_datetime(parsedate_to_datetime(modified) - timedelta(days=1), usegmt=True)
        assert (await fetch(session, url, {**ranged, "If-Range": old}))[0] == 200
        async with session.head(url) as response:
            assert response.status == 200 and int(response.headers["Content-Length"]) == size
            assert await response.read() == b""

    run(scenario)


def test_blob_checksums() -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        outputs = [u for r in await all_records(sb, session) for u in file_urls(r)[1:]]
        with_md5 = without = 0
        for url in outputs:
            status, headers, body = await fetch(session, url)
            expected = base64.b64encode(hashlib.md5(body).digest()).decode()
            assert not headers["ETag"].strip('"').isalnum() or headers["ETag"].startswith('"0x8D')
            if "Content-MD5" in headers:
                with_md5 += 1
                assert headers["Content-MD5"] == headers["x-ms-blob-content-md5"] == expected
                status, headers, _ = await fetch(session, url, {"Range": "bytes=0-9"})
                assert status == 206 and "Content-MD5" not in headers
                assert headers["x-ms-blob-content-md5"] == expected
            else:
                without += 1
        assert with_md5 and without

    run(scenario, DatasetConfig(assets_per_org=10))


def test_touch_spectrum_changes_record_bytes_and_etag() -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        record = next(r for r in await all_records(sb, session) if len(file_urls(r)) > 1)
        url = file_urls(record)[1]
        _, headers, body = await fetch(session, url)
        sb.dataset.touch_spectrum(ORG, record["id"])
        touched = next(r for r in await all_records(sb, session) if r["id"] == record["id"])
        assert touched["lastModification"] != record["lastModification"]
        _, new_headers, new_body = await fetch(session, url)
        assert new_body != body and new_headers["ETag"] != headers["ETag"]
        assert new_body == sb.dataset.file_bytes(url)
        sb.dataset.remove_spectrum(ORG, record["id"])
        assert record["id"] not in [r["id"] for r in await all_records(sb, session)]
        assert (await fetch(session, url))[0] == 404

    run(scenario)


def test_formats_are_real_files() -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        urls = [u for r in await all_records(sb, session) for u in file_urls(r)]
        kinds = {u.rsplit(".", 1)[-1].lower(): u for u in urls}
        png = sb.dataset.file_bytes(kinds["png"])
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and b"IEND" in png
        pdf = sb.dataset.file_bytes(kinds["pdf"])
        assert pdf.startswith(b"%PDF-1.4") and pdf.endswith(b"%%EOF\n")
        xref_at = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
        assert pdf[xref_at:xref_at + 4] == b"xref"
        dst = sb.dataset.file_bytes(kinds["dst"])
        assert dst.startswith(b"LA:") and dst.endswith(b"\x00\x00\xf3")
        assert (len(dst) - 512) % 3 == 0
        stitches = int(dst[dst.index(b"ST:") + 3:dst.index(b"ST:") + 10])
        assert stitches == (len(dst) - 512) // 3

    run(scenario, DatasetConfig(organizations=2, assets_per_org=10))


def test_huge_files_serve_ranges_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    size = 256 * 1024 * 1024
    made: list[int] = []  # the blocks of file content computed: the work, whatever the clock
    real_block = padding_block

    def counted(kind: str, key: bytes, index: int) -> bytes:
        made.append(index)
        return real_block(kind, key, index)

    monkeypatch.setattr(sandbox_files, "padding_block", counted)

    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        record = (await all_records(sb, session))[0]
        url = record["uploadedAssetUri"]
        status, headers, body = await fetch(session, url, {"Range": f"bytes={size - 1000}-"})
        assert status == 206 and len(body) == 1000 and headers["Content-Range"].endswith(f"/{size}")
        async with session.head(url) as response:
            assert int(response.headers["Content-Length"]) == size
        # 1000 bytes span at most two blocks; the other 4,000-odd were never computed.
        assert len(made) <= 2 and all(i >= size // BLOCK - 2 for i in made), made[:5]

    run(scenario, DatasetConfig(file_size_min=size, file_size_max=size))


def test_counts_log_stats_and_redirect() -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        await get_json(session, onpremise_url(sb), TASTEVIN)
        await get_json(session, spectrum_url(sb, query="?page=1"), TOKEN)
        assert sb.counts["/products/1001/assets.json"] == 1
        logged = sb.requests[0]
        assert "api_key=***" in logged.query and KEY not in logged.query
        assert logged.headers["X-TASTEVIN-VERSION"] == "1.2"
        assert sb.requests[1].headers == {"SPECTRUM_API_TOKEN": "***"}
        _, stats = await get_json(session, sb.files_url + "/_sandbox/stats")
        assert stats["total"] == 2
        target = sb.api_url + "/_sandbox/stats"
        async with session.get(f"{sb.files_url}/redirect", params={"to": target},
                               allow_redirects=False) as response:
            assert response.status == 302 and response.headers["Location"] == target
        async with session.post(sb.api_url + "/_sandbox/reset") as response:
            assert response.status == 200
        assert sum(sb.counts.values()) == 0

    run(scenario)


def test_sandbox_thread_serves_synchronous_callers() -> None:
    with SandboxThread(DatasetConfig()) as sb:
        request = urllib.request.Request(onpremise_url(sb.sandbox), headers=TASTEVIN)
        with urllib.request.urlopen(request, timeout=5) as response:
            assert len(json.load(response)["assets"]) == 3
        assert sb.counts["/products/1001/assets.json"] == 1
        sb.reset_counts()
        assert not sb.counts


# -- faults ---------------------------------------------------------------------------------


def test_status_faults_with_retry_after_and_first_n() -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        url = (await all_records(sb, session))[0]["uploadedAssetUri"]
        first = await fetch(session, url)
        assert first[0] == 503 and first[1]["Retry-After"] == "2"
        assert (await fetch(session, url))[0] == 503
        assert (await fetch(session, url))[0] == 200
        before = datetime.now(UTC)
        status, headers, _ = await get_json_full(session, onpremise_url(sb), TASTEVIN)
        after = datetime.now(UTC)
        assert status == 429
        # 3 s after the moment the server answered, rounded up to a whole second.
        when = parsedate_to_datetime(headers["Retry-After"])
        assert before + timedelta(seconds=3) <= when < after + timedelta(seconds=4)

    run(scenario, faults="files:503@first2:retry-after=2,onpremise:429:retry-after=date3")


async def get_json_full(session: aiohttp.ClientSession, url: str,
                        headers: dict[str, str]) -> tuple[int, Any, bytes]:
    return await fetch(session, url, headers)


@pytest.mark.parametrize("kind", ["truncate", "reset"])
def test_body_faults_break_the_transfer(kind: str) -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        record = (await all_records(sb, session))[0]
        url = record["uploadedAssetUri"]
        with pytest.raises(aiohttp.ClientError):
            await fetch(session, url)
        status, _, body = await fetch(session, url)
        assert status == 200 and body == sb.dataset.file_bytes(url)

    run(scenario, faults=f"files:{kind}@first1")


def test_badmd5_change_and_slow() -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        _, body = await get_json(session, onpremise_url(sb), TASTEVIN)
        url = body["assets"][0]["original_url"]
        _, headers, content = await fetch(session, url)
        assert headers["ETag"] != f'"{hashlib.md5(content).hexdigest()}"'
        _, again, content2 = await fetch(session, url)
        assert again["ETag"] != headers["ETag"] and content2 != content
        started = time.monotonic()
        status, _ = await get_json(session, spectrum_url(sb), TOKEN)
        assert status == 200 and time.monotonic() - started > 0.3

    run(scenario, faults="files:badmd5,files:change,spectrum:slow:rate=20000")


def test_stall_pauses_then_completes() -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        url = (await all_records(sb, session))[0]["uploadedAssetUri"]
        started = time.monotonic()
        status, _, body = await fetch(session, url)
        assert status == 200 and body == sb.dataset.file_bytes(url)
        assert time.monotonic() - started >= 0.4

    run(scenario, faults="files:stall@first1:seconds=0.4:fraction=0.3")


def test_serve_runs_until_cancelled() -> None:
    async def main() -> None:
        bound = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(serve(DatasetConfig(), port=0, faults="api:500",
                                         ready=lambda a, f: bound.set_result((a, f))))
        api_url, files_url = await asyncio.wait_for(bound, 5)
        assert api_url != files_url
        async with aiohttp.ClientSession() as session:
            assert (await fetch(session, f"{api_url}/products/1001/assets.json"))[0] == 500
            _, stats = await get_json(session, files_url + "/_sandbox/stats")
            assert stats["counts"] == {"/products/1001/assets.json": 1}
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_fault_plan_parsing_and_reproducibility() -> None:
    plan = FaultPlan.parse("api:500@p0.5,files:stall:seconds=1:fraction=0.2", seed=7)
    assert plan.rules[1].seconds == 1 and plan.rules[1].fraction == 0.2
    again = FaultPlan.parse("api:500@p0.5,files:stall:seconds=1:fraction=0.2", seed=7)
    first = [plan.decide("spectrum", f"/p{i % 3}").status is not None for i in range(60)]
    assert first == [again.decide("spectrum", f"/p{i % 3}").status is not None for i in range(60)]
    assert 10 < sum(first) < 50
    assert plan.decide("files", "/x").body is plan.rules[1]
    for bad in ("nope:500", "files:418", "files:500@often", "files:slow:seconds=1", "files"):
        with pytest.raises(ValueError):
            FaultPlan.parse(bad)


# -- scale ----------------------------------------------------------------------------------


def test_a_million_records_page_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    planned: list[tuple[int, int]] = []  # records worked out: the cost, whatever the clock
    real_plan = sandbox_spectrum.plan_record

    def counted(cfg: DatasetConfig, org_index: int, index: int) -> Any:
        planned.append((org_index, index))
        return real_plan(cfg, org_index, index)

    monkeypatch.setattr(sandbox_spectrum, "plan_record", counted)
    dataset = Dataset(DatasetConfig(organizations=100, assets_per_org=10_000))
    last = dataset.organization_ids()[-1]
    page = dataset.spectrum_contents(last, 9_900, 100, "http://a", "http://f")
    assert len(page) == 100
    assert planned == [(99, i) for i in range(9_900, 10_000)]
    dataset.remove_spectrum(last, page[0]["id"])
    moved = dataset.spectrum_contents(last, 9_900, 100, "http://a", "http://f")
    assert moved[0]["id"] == page[1]["id"] and len(moved) == 99
    url = next(u for r in moved for u in file_urls(r))
    assert len(dataset.file_bytes(url)) >= 2_000


# -- hostile --------------------------------------------------------------------------------


def test_hostile_records_and_listings() -> None:
    async def scenario(sb: Sandbox, session: aiohttp.ClientSession) -> None:
        _, body = await get_json(session, spectrum_url(sb, query="?pageSize=100"), TOKEN)
        contents = body["contents"]
        assert None in contents
        assert any(r and isinstance(r["productionJobs"], str) for r in contents)
        uris = [o["uri"] for r in contents if r and isinstance(r["productionJobs"], list)
                for j in r["productionJobs"] if j and isinstance(j.get("result"), dict)
                for o in j["result"]["outputs"] if o and o.get("uri")]
        assert "file:///etc/passwd" in [r and r["uploadedAssetUri"] for r in contents]
        traversal = next(u for u in uris if u.endswith("..%2F..%2Fetc%2Fpasswd"))
        status, _, data = await fetch(session, traversal)
        assert status == 200 and data == sb.dataset.file_bytes(traversal)
        redirect = next(u for u in uris if u.startswith(sb.files_url + "/redirect?to="))
        async with session.get(redirect, allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"].startswith(sb.api_url)
        html_org, list_org = sb.dataset.organization_ids()[-2:]
        async with session.get(spectrum_url(sb, html_org), headers=TOKEN) as response:
            assert response.status == 200 and response.content_type == "text/html"
        assert isinstance((await get_json(session, spectrum_url(sb, list_org), TOKEN))[1], list)
        _, assets = await get_json(session, onpremise_url(sb), TASTEVIN)
        assert None in assets["assets"]
        names = [n for a in assets["assets"] if a and isinstance(a["versions"], dict)
                 for n in a["versions"]]
        assert "../../etc/passwd" in names and "CON.png" in names

    run(scenario, DatasetConfig(hostile=True))


def test_every_pdf_size_can_be_laid_out() -> None:
    from assetvault.sandbox.formats import layout

    for size in (*range(1, 3000), 9_999, 10_000, 10_001, 99_999, 100_000, 1_000_000):
        assert layout("pdf", size, b"k" * 16).kind == "pdf"
