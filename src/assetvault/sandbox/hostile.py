"""Hostile data for security tests (``DatasetConfig(hostile=True)``).

Appended after the normal records of the first organization and of the first product (1001):

* file names, in both Spectrum blob/CDN URLs and OnPremise version names and URLs:
  ``../../etc/passwd``, ``/etc/shadow``, ``..\\..\\windows\\win.ini``, NUL, control characters
  with CR/LF and an ANSI escape, a literal ``%``, ``CON.png``, a 300-byte name, and ``Café.png`` in
  both NFC and NFD (two distinct files whose names normalise alike);
* a job ``reference`` of ``../../../tmp/evil`` and a record whose ``id`` is a string with ``..``;
* URLs that must not be fetched: ``file:///etc/passwd``, ``ftp://…``, ``data:…``, ``javascript:…``,
  ``""``, a relative path, a scheme-relative ``//host/x``, an unparsable ``http://[::1``;
* ``productionJobs`` as a string, jobs and outputs that are null or missing keys, a null record,
  OnPremise ``versions`` as a list and null;
* outputs and originals behind ``/redirect?to=``: files host → API host and API host → files
  host, both ending at a real file, for credential-leak tests.

Extra ids whose listing is broken (also returned by ``organization_ids()`` / ``owner_ids()``):
organization ``7000000000000666666`` and owner ``666666`` answer an HTML error page with 200;
``7000000000000666667`` and ``666667`` answer a JSON list instead of the envelope.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from .config import DatasetConfig

__all__ = ["SPECIAL_ORGS", "SPECIAL_OWNERS", "file_paths", "onpremise_assets",
           "special_listing", "spectrum_records"]

SPECIAL_ORGS = ("7000000000000666666", "7000000000000666667")
SPECIAL_OWNERS = ("666666", "666667")
_HTML = (b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
         b"<body><h1>Bad Gateway</h1><p>The upstream server is unavailable.</p></body></html>\n")
_WRONG_SHAPE = b'[{"id": 1, "note": "a list where the envelope should be"}]'

NAMES = (
    "../../etc/passwd", "/etc/shadow", "..\\..\\windows\\win.ini", "evil\x00name.png",
    "bell\x07\x1b[31mred\r\nline.png", "100% done.png", "CON.png", "x" * 296 + ".png",
    "Cafe\u0301.png", "Caf\u00e9.png",
)
BAD_URLS = ("file:///etc/passwd", "ftp://ftp.example.invalid/x.dst",
            "data:image/png;base64,iVBORw0KGgo=", "javascript:alert(1)", "", "relative/x.png",
            "//evil.example.invalid/x.png", "http://[::1")
_REFERENCE = "../../../tmp/evil"
_BLOB = "/blob/{client}/embroidery/HOSTILE/"
_UPLOAD = "/cdn/assets/UserUpload/"
_RACK = "/rackcdn/uploads/beer_label_asset/990001/"
REDIRECT_TARGET = "/cdn/assets/UserUpload/redirect-target.png"
SIZED_PATHS = (_RACK + NAMES[0], REDIRECT_TARGET)
_UPDATED = datetime(2022, 1, 1, tzinfo=UTC)


def _enc(name: str) -> str:
    return quote(name, safe="")


def special_listing(cfg: DatasetConfig, ident: str) -> tuple[str, bytes] | None:
    """(content type, body) of a deliberately broken listing, or None for any other id."""
    if ident in (SPECIAL_ORGS[0], SPECIAL_OWNERS[0]):
        return "text/html; charset=utf-8", _HTML
    if ident in (SPECIAL_ORGS[1], SPECIAL_OWNERS[1]):
        return "application/json", _WRONG_SHAPE
    return None


@functools.lru_cache(maxsize=8)
def file_paths(cfg: DatasetConfig) -> frozenset[str]:
    """Decoded request paths of every hostile file the host serves."""
    blob = _BLOB.format(client=cfg.client)
    paths = {blob + name for name in NAMES} | {_UPLOAD + name for name in NAMES}
    paths |= {_RACK + name for name in NAMES}
    paths.add(f"/blob/{cfg.client}/embroidery/{_REFERENCE}/{_REFERENCE}R1.DST")
    paths.add(REDIRECT_TARGET)
    return frozenset(paths)


def _output(uri: str, ext: str = ".png") -> dict[str, Any]:
    return {"id": 0, "convertedAssetId": None, "uri": uri,
            "assetFormat": {"id": 1, "extension": ext, "mimeType": "image/png",
                            "clientHandle": None, "requiresConversion": False, "isImage": True,
                            "isRaster": True, "conversionAssetFormat": None, "name": "PNG"}}


def _job(job_id: int, reference: str, outputs: list[Any]) -> dict[str, Any]:
    uris = [o["uri"] for o in outputs if isinstance(o, dict) and "uri" in o]
    return {"id": job_id, "uploadedAssetId": 1, "clientHandle": "carhartt",
            "providerHandle": "midsouth", "providerReference": "MS-HOSTILE",
            "reference": reference, "clientReference": reference, "status": "Completed",
            "createdDate": "2022-01-01T00:00:00",
            "result": {"id": job_id, "receivedDate": "2022-01-01T00:00:00", "threadCount": 1,
                       "lastModification": "2022-01-01T00:00:00", "outputs": outputs},
            "specificationUri": uris[0] if uris else None, "dstUri": None,
            "lastModification": "2022-01-01T00:00:00"}


def _record(cfg: DatasetConfig, cid: object, upload: str, jobs: object) -> dict[str, Any]:
    return {"id": cid, "uploadedAssetId": 1, "uploadedAssetUri": upload,
            "metaData": {"Url": None}, "spectrumAssetReference": None,
            "clientAccountReference": "60000000", "organizationIdentifier": "7000000000000300322",
            "userFacingFileName": "hostile", "productionJobs": jobs,
            "hasProductionJob": bool(jobs), "clientHandle": cfg.client, "active": True,
            "createdDate": "2022-01-01T00:00:00", "lastModification": "2022-01-01T00:00:00"}


def spectrum_records(cfg: DatasetConfig, api_url: str, files_url: str) -> list[Any]:
    """The hostile records appended to the first organization's listing."""
    blob = files_url + _BLOB.format(client=cfg.client)
    names = [_output(blob + _enc(name)) for name in NAMES]
    evil_ref = f"{files_url}/blob/{cfg.client}/embroidery/{_enc(_REFERENCE)}/"
    target = quote(api_url + REDIRECT_TARGET, safe="")
    back = quote(files_url + REDIRECT_TARGET, safe="")
    return [
        _record(cfg, 900_000_001, files_url + _UPLOAD + _enc(NAMES[0]),
                [_job(900_001, "HOSTILE", names),
                 _job(900_002, _REFERENCE, [_output(evil_ref + _enc(_REFERENCE + "R1.DST"),
                                                    ".dst")])]),
        _record(cfg, 900_000_002, BAD_URLS[0],
                [_job(900_003, "BADURLS", [_output(url) for url in BAD_URLS])]),
        _record(cfg, 900_000_003, files_url + _UPLOAD + _enc(NAMES[3]), "not a list"),
        None,
        _record(cfg, 900_000_004, f"{files_url}/redirect?to={target}",
                [_job(900_004, "REDIRECT", [_output(f"{files_url}/redirect?to={target}"),
                                            _output(f"{api_url}/redirect?to={back}")])]),
        _record(cfg, "../../evil", files_url + _UPLOAD + _enc(NAMES[7]),
                [None, {"id": 900_005}, {"id": 900_006, "reference": "R", "result": "done"},
                 _job(900_007, "PARTIAL", [None, {"id": 0}, {"uri": None}])]),
    ]


def onpremise_assets(cfg: DatasetConfig, files_url: str, since: datetime | None,
                     sizes: dict[str, int] | None = None) -> list[Any]:
    """The hostile assets appended to product 1001 (``sizes``: true sizes of hostile files)."""
    if since is not None and since >= _UPDATED:
        return []
    rack = files_url + _RACK
    versions = {name: {"url": rack + _enc(name)} for name in NAMES}
    original = _RACK + NAMES[0]
    assets: list[Any] = [
        _asset(990_001, versions, rack + _enc(NAMES[0]), (sizes or {}).get(original, 0)),
        _asset(990_002, {f"v{i}": {"url": url} for i, url in enumerate(BAD_URLS)},
               BAD_URLS[0], 10),
        _asset(990_003, ["web_thumb"], rack + _enc(NAMES[6]), 10),
        _asset(990_004, None, "", 0),
        None,
        _asset("../../a", {"web_thumb": {"url": f"{files_url}/redirect?to="
                                                 + quote(files_url + REDIRECT_TARGET, safe="")}},
               files_url + REDIRECT_TARGET, (sizes or {}).get(REDIRECT_TARGET, 0)),
    ]
    return assets


def _asset(asset_id: object, versions: object, original: str, size: int) -> dict[str, Any]:
    return {"id": asset_id, "type": "ImageAsset", "subtype": "WineLabelAsset",
            "display_position": None, "versions": versions, "asset_content_type": "image/png",
            "asset_file_size": size, "updated_at": _UPDATED.isoformat(timespec="seconds"),
            "processed": True, "status": 0, "original_url": original, "product_id": 1001}
