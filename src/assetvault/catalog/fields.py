"""A record's key fields, from its ``asset.json`` (the API's record as JSON).

Everything here is network text: it is only ever shown as text (escaped where written), cut to
a bounded length, and never used as a file name or a link.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .model import Record

MAX_TEXT = 200
MAX_FIELDS = 16
SPECTRUM_FIELDS = ("id", "userFacingFileName", "spectrumAssetReference", "clientAccountReference",
                   "organizationIdentifier", "clientHandle", "active", "createdDate",
                   "lastModification")
ONPREMISE_FIELDS = ("id", "type", "subtype", "asset_content_type", "asset_file_size",
                    "updated_at", "processed", "status", "display_position", "product_id",
                    "beer_id", "restaurant_id", "menu_item_id")


def text(value: object) -> str:
    """A scalar as one bounded line of text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    line = " ".join(str(value).split())
    return line if len(line) <= MAX_TEXT else line[:MAX_TEXT - 1] + "…"


def describe(record: Record, doc: Any) -> None:
    """Fill the record's name, reference, id and key fields from its parsed document."""
    parts = record.key.split("/")
    record.ident = text(doc.get("id")) if isinstance(doc, dict) and "id" in doc else parts[-1]
    if not isinstance(doc, dict):
        record.name = record.name or parts[-1]
        return
    if parts[0] == "spectrum":
        _spectrum(record, doc)
    elif parts[0] == "onpremise":
        _onpremise(record, doc)
    else:
        record.name = text(doc.get("name")) or parts[-1]
        record.fields = _pick(doc, [k for k, v in doc.items() if _scalar(v)])


def _spectrum(record: Record, doc: dict[str, Any]) -> None:
    record.name = text(doc.get("userFacingFileName")) or f"Asset {record.ident}"
    jobs = doc.get("productionJobs")
    jobs = [j for j in jobs if isinstance(j, dict)] if isinstance(jobs, list) else []
    refs = [text(doc.get("spectrumAssetReference"))]
    refs += [text(j.get("reference")) for j in jobs]
    record.reference = " ".join(dict.fromkeys(r for r in refs if r))
    record.fields = _pick(doc, SPECTRUM_FIELDS)
    for job in jobs[:MAX_FIELDS]:
        summary = ", ".join(text(job.get(k)) for k in ("embellishmentType", "status", "placement",
                                                       "productColor") if job.get(k))
        record.fields.append((f"job {text(job.get('id'))} {text(job.get('reference'))}", summary))


def _onpremise(record: Record, doc: dict[str, Any]) -> None:
    kind = text(doc.get("subtype") or doc.get("type")) or "Asset"
    record.name = text(doc.get("name")) or f"{kind} {record.ident}"
    record.reference = text(doc.get("reference") or doc.get("sku") or "")
    record.fields = _pick(doc, ONPREMISE_FIELDS) or _pick(
        doc, [k for k, v in doc.items() if _scalar(v)])
    versions = doc.get("versions")
    if isinstance(versions, dict) and versions:
        record.fields.append(("versions", text(", ".join(map(str, versions)))))


def _pick(doc: dict[str, Any], keys: Iterable[str]) -> list[tuple[str, str]]:
    found = [(text(k), text(doc[k])) for k in keys if k in doc and _scalar(doc[k])]
    return found[:MAX_FIELDS]


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
