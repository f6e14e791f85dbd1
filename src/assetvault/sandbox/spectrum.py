"""Spectrum content records: a small typed plan per record, rendered to the API's JSON shape.

Ids encode where a record lives, so a file URL leads back to its record in O(1): content ids are
``1000 + org index * assets_per_org + index``, a job reference is ``CCG`` + the content id in 8+
digits + the job number in 3, and an upload's UUID ends with the content id in hex.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .config import FIRST_ORGANIZATION, DatasetConfig
from .detrand import dotnet_date, hkey, rng, spread_date

__all__ = ["JobPlan", "RecordPlan", "content_id", "locate", "plan_record", "render_record"]

FIRST_CONTENT_ID = 1000
_REFERENCE = re.compile(r"^CCG(\d{8,})(\d{3})$")
_UPLOAD = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-([0-9a-f]{12})")

# Record shapes, cycled so even a dozen records show every kind of variety:
# (job kinds, active); job kind "ok", "ok+emb", "dst+png", "noresult" or "nooutputs".
_SHAPES: tuple[tuple[tuple[str, ...] | None, bool], ...] = (
    (("ok",), True), (None, True), (("ok", "ok"), True), (("noresult",), True),
    (("nooutputs",), True), (("ok",), False), (("ok+emb",), True), (None, False),
    (("dst+png",), True), (("ok", "noresult"), True),
)
_OUTPUTS = {"ok": ("DST", "PNG", "PDF"), "ok+emb": ("DST", "PNG", "PDF", "EMB"),
            "dst+png": ("DST", "PNG"), "noresult": (), "nooutputs": ()}
_UPLOAD_EXTS = (".png",) * 16 + (".jpg", ".jpeg", "", ".PNG", ".pdf")
_WORDS = ("white", "navy", "mba", "logo", "crest", "used", "final", "v2", "team", "left chest")
_COLORS = ("Navy", "Black", "Carhartt Brown", "Heather Grey", "White", "Moss")


@dataclass(frozen=True, slots=True)
class JobPlan:
    """One production job; ``outputs`` is None when the job has no result yet."""

    job_id: int
    reference: str
    outputs: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class RecordPlan:
    content_id: int
    org_index: int
    upload_name: str
    jobs: tuple[JobPlan, ...] | None
    active: bool

    def upload_path(self) -> str:
        return f"/cdn/assets/UserUpload/{self.upload_name}"

    def output_path(self, client: str, job: JobPlan, fmt: str) -> str:
        return f"/blob/{client}/embroidery/{job.reference}/{job.reference}R1.{fmt}"

    def file_paths(self, client: str) -> list[str]:
        paths = [self.upload_path()]
        for job in self.jobs or ():
            paths += [self.output_path(client, job, fmt) for fmt in job.outputs or ()]
        return paths


def organization_id(index: int) -> str:
    return str(FIRST_ORGANIZATION + index)


def content_id(cfg: DatasetConfig, org_index: int, index: int) -> int:
    return FIRST_CONTENT_ID + org_index * cfg.assets_per_org + index


def locate(cfg: DatasetConfig, cid: int) -> tuple[int, int] | None:
    """(org index, index) of a generated content id, or None."""
    offset = cid - FIRST_CONTENT_ID
    if cfg.assets_per_org == 0 or not 0 <= offset < cfg.organizations * cfg.assets_per_org:
        return None
    return divmod(offset, cfg.assets_per_org)


def content_id_of_reference(reference: str) -> int | None:
    match = _REFERENCE.match(reference)
    return int(match.group(1)) if match else None


def content_id_of_upload(name: str) -> int | None:
    match = _UPLOAD.search(name)
    return int(match.group(1), 16) if match else None


def plan_record(cfg: DatasetConfig, org_index: int, index: int) -> RecordPlan:
    cid = content_id(cfg, org_index, index)
    r = rng(cfg.seed, "spectrum", cid)
    shift = hkey(cfg.seed, "shape", org_index)[0]
    job_kinds, active = _SHAPES[(index + shift) % len(_SHAPES)]
    jobs = None
    if job_kinds is not None:
        jobs = tuple(
            JobPlan(10_000 + cid * 4 + n, f"CCG{cid:08d}{n + 1:03d}",
                    None if kind == "noresult" else _OUTPUTS[kind])
            for n, kind in enumerate(job_kinds))
    return RecordPlan(cid, org_index, _upload_name(r, cid), jobs, active)


def _upload_name(r: random.Random, cid: int) -> str:
    h = r.getrandbits(80)
    hexed = f"{h:020x}"
    uuid = f"{hexed[:8]}-{hexed[8:12]}-4{hexed[13:16]}-a{hexed[17:20]}-{cid:012x}"
    prefix = "Square_" if r.random() < 0.3 else ""
    return prefix + uuid + r.choice(_UPLOAD_EXTS)


def render_record(cfg: DatasetConfig, plan: RecordPlan, touched: datetime | None,
                  api_url: str, files_url: str) -> dict[str, Any]:
    """The record exactly as the API returns it; ``touched`` overrides every lastModification."""
    r = rng(cfg.seed, "spectrum-fields", plan.content_id)
    created = spread_date(cfg.seed, "created", plan.content_id)
    uploaded_id = 19_000_000 + plan.content_id
    jobs = None
    if plan.jobs is not None:
        jobs = [_render_job(cfg, plan, job, r, created, touched, uploaded_id, files_url)
                for job in plan.jobs]
    words = r.sample(_WORDS, 2)
    return {
        "id": plan.content_id,
        "uploadedAssetId": uploaded_id,
        "uploadedAssetUri": files_url + plan.upload_path(),
        "metaData": {"Url": f"{api_url}/api/uploaded-assets/id/{uploaded_id}"},
        "spectrumAssetReference": plan.jobs[0].reference if plan.jobs else None,
        "clientAccountReference": str(60_000_000 + plan.org_index),
        "organizationIdentifier": organization_id(plan.org_index),
        "userFacingFileName": " ".join(words),
        "productionJobs": jobs,
        "hasProductionJob": bool(jobs),
        "clientHandle": cfg.client,
        "active": plan.active,
        "createdDate": dotnet_date(created),
        "lastModification": dotnet_date(touched or created),
    }


def _render_job(cfg: DatasetConfig, plan: RecordPlan, job: JobPlan, r: random.Random,
                created: datetime, touched: datetime | None, uploaded_id: int,
                files_url: str) -> dict[str, Any]:
    received = created + timedelta(minutes=r.randint(1, 60 * 24 * 30))
    finished = received + timedelta(seconds=r.randint(60, 86_400 * 7),
                                    milliseconds=r.randint(1, 999))
    result = None
    uris: dict[str, str] = {}
    if job.outputs is not None:
        uris = {fmt: files_url + plan.output_path(cfg.client, job, fmt) for fmt in job.outputs}
        result = {
            "id": 5_000 + plan.content_id * 4 + int(job.reference[-3:]),
            "receivedDate": dotnet_date(received),
            "threadCount": r.randint(800, 12_000),
            "actualHeight": _size(r.choice(("2.50n", "3.00n", "3.25n"))),
            "actualWidth": _size(r.choice(("3.00n", "3.50n", "4.00n"))),
            "lastModification": dotnet_date(touched or finished),
            "outputs": [_output(cfg.client, fmt, uri) for fmt, uri in uris.items()],
        }
    return {
        "id": job.job_id,
        "uploadedAssetId": uploaded_id,
        "clientHandle": cfg.client,
        "providerHandle": "midsouth",
        "providerReference": "MS-" + hkey(cfg.seed, "provider", job.job_id).hex()[:8].upper(),
        "reference": job.reference,
        "clientReference": job.reference,
        "template": r.choice(("LIGHT", "DARK")),
        "productColor": r.choice(_COLORS),
        "placement": r.choice(("RC", "LC", "CB")),
        "placementWidth": _size("3.50n"),
        "placementHeight": _size("3.00n"),
        "notes": "Keep uploaded logo color(s) ",
        "createdDate": dotnet_date(created),
        "workFlowType": r.choice(("New", "New", "Revision")),
        "embellishmentType": "Embroidery",
        "status": "Completed" if result else "InProgress",
        "result": result,
        "specificationUri": uris.get("PDF"),
        "dstUri": uris.get("DST"),
        "lastModification": dotnet_date(touched or finished - timedelta(milliseconds=114)),
    }


def _size(value: str) -> dict[str, str]:
    return {"value": value, "type": "Big Number"}


_PNG_FORMAT: dict[str, Any] = {
    "id": 1, "extension": ".png", "mimeType": "image/png", "clientHandle": None,
    "requiresConversion": False, "isImage": True, "isRaster": True,
    "conversionAssetFormat": None, "name": "Portable Network Graphics",
}


def _asset_format(client: str, fmt: str) -> dict[str, Any]:
    if fmt == "PNG":
        return dict(_PNG_FORMAT)
    if fmt == "PDF":
        return {"id": 3, "extension": ".pdf", "mimeType": "application/pdf", "clientHandle": None,
                "requiresConversion": True, "isImage": True, "isRaster": False,
                "conversionAssetFormat": dict(_PNG_FORMAT), "name": "Portable Document Format"}
    names = {"DST": (1008, "Data Stitch Tajima"), "EMB": (1012, "Wilcom Embroidery")}
    format_id, name = names[fmt]
    return {"id": format_id, "extension": "." + fmt.lower(), "mimeType": "application/octet-stream",
            "clientHandle": client, "requiresConversion": False, "isImage": True,
            "isRaster": False, "conversionAssetFormat": None, "name": name}


def _output(client: str, fmt: str, uri: str) -> dict[str, Any]:
    return {"id": 0, "convertedAssetId": None, "uri": uri,
            "assetFormat": _asset_format(client, fmt)}
