"""OnPremise assets: a typed plan per asset, rendered to the ``{"assets": [...]}`` member shape.

Asset ids are ``60001 + ordinal`` over all owners (products, then beers, restaurants, menu items),
so the id in a file URL leads back to its owner in O(1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from .config import OWNER_BASES, OWNER_KINDS, DatasetConfig
from .detrand import hnum, rng, spread_date

__all__ = ["AssetPlan", "asset_path_id", "list_body", "locate", "owner_id", "owner_updated_at",
           "plan_asset", "render_owner"]

FIRST_ASSET_ID = 60_001
_PATH = re.compile(r"^/rackcdn/uploads/beer_label_asset/(\d+)/")
_SUBTYPES = {"products": "WineLabelAsset", "beers": "BeerLabelAsset",
             "restaurants": "RestaurantLogoAsset", "menu_items": "MenuItemImageAsset"}
_ALL_VERSIONS = ("ipad_one_up_thumb", "web_thumb", "ipad_list")
# (original extension, versions, processed, status), cycled for guaranteed variety.
_SHAPES: tuple[tuple[str, tuple[str, ...], bool, int], ...] = (
    (".jpg", _ALL_VERSIONS, True, 0), (".jpg", _ALL_VERSIONS, False, 0),
    (".jpg", _ALL_VERSIONS, True, 1), (".png", _ALL_VERSIONS, True, 0),
    (".pdf", ("web_thumb", "ipad_list"), True, 0), (".jpg", ("web_thumb", "ipad_list"), True, 0),
)
_TYPES = {".jpg": ("ImageAsset", "image/jpeg"), ".png": ("ImageAsset", "image/png"),
          ".pdf": ("PdfAsset", "application/pdf")}
_OFFSETS = (-7, -8, 0, 2)


@dataclass(frozen=True, slots=True)
class AssetPlan:
    asset_id: int
    kind: str
    owner_index: int
    index: int
    number: int
    original_ext: str
    versions: tuple[str, ...]
    processed: bool
    status: int

    def original_path(self) -> str:
        folder = f"/rackcdn/uploads/beer_label_asset/{self.asset_id}"
        return f"{folder}/{self.number}_image{self.original_ext}"

    def version_path(self, name: str) -> str:
        return f"/rackcdn/uploads/beer_label_asset/{self.asset_id}/{name}_{self.number}_image.jpg"


def owner_id(kind: str, owner_index: int) -> str:
    return str(OWNER_BASES[kind] + owner_index)


def owner_index(cfg: DatasetConfig, kind: str, owner: str) -> int | None:
    """Index of a generated owner id of ``kind``, or None."""
    if kind not in OWNER_BASES or not owner.isdigit():
        return None
    index = int(owner) - OWNER_BASES[kind]
    return index if 0 <= index < cfg.owner_count(kind) else None


def _first_ordinal(cfg: DatasetConfig, kind: str) -> int:
    before = OWNER_KINDS[:OWNER_KINDS.index(kind)]
    return sum(cfg.owner_count(k) for k in before) * cfg.assets_per_owner


def locate(cfg: DatasetConfig, asset_id: int) -> tuple[str, int, int] | None:
    """(kind, owner index, index) of a generated asset id, or None."""
    ordinal = asset_id - FIRST_ASSET_ID
    if ordinal < 0 or cfg.assets_per_owner == 0:
        return None
    for kind in OWNER_KINDS:
        span = cfg.owner_count(kind) * cfg.assets_per_owner
        if ordinal < span:
            owner, index = divmod(ordinal, cfg.assets_per_owner)
            return kind, owner, index
        ordinal -= span
    return None


def asset_path_id(path: str) -> int | None:
    match = _PATH.match(path)
    return int(match.group(1)) if match else None


def plan_asset(cfg: DatasetConfig, kind: str, owner: int, index: int) -> AssetPlan:
    ordinal = _first_ordinal(cfg, kind) + owner * cfg.assets_per_owner + index
    asset_id = FIRST_ASSET_ID + ordinal
    shape = _SHAPES[(ordinal + hnum(cfg.seed, "onpremise-shape")) % len(_SHAPES)]
    ext, versions, processed, status = shape
    number = 1_000_000 + hnum(cfg.seed, "number", asset_id) % 9_000_000
    return AssetPlan(asset_id, kind, owner, index, number, ext, versions, processed, status)


def base_updated_at(cfg: DatasetConfig, plan: AssetPlan) -> datetime:
    hours = _OFFSETS[hnum(cfg.seed, "tz", plan.asset_id) % len(_OFFSETS)]
    moment = spread_date(cfg.seed, "updated", plan.asset_id).replace(microsecond=0)
    return moment.astimezone(timezone(timedelta(hours=hours)))


def render_asset(plan: AssetPlan, updated_at: datetime, processed: bool, original_size: int,
                 files_url: str) -> dict[str, Any]:
    """The asset exactly as the API returns it."""
    asset_type, content_type = _TYPES[plan.original_ext]
    return {
        "id": plan.asset_id,
        "type": asset_type,
        "subtype": _SUBTYPES[plan.kind],
        "display_position": {0: 1, 1: 2}.get(plan.index),
        "versions": {name: {"url": files_url + plan.version_path(name)} for name in plan.versions},
        "asset_content_type": content_type,
        "asset_file_size": original_size,
        "updated_at": updated_at.isoformat(timespec="seconds"),
        "processed": processed,
        "status": plan.status,
        "original_url": files_url + plan.original_path(),
        "product_id": int(owner_id(plan.kind, plan.owner_index)),
    }


# -- the account's lists of owners (/products.json, /beers.json, /menu_items.json) -----------

_SINGULAR = {"products": "product", "beers": "beer", "menu_items": "menu_item"}
_WORDS = ("Reserve", "Estate", "Valley", "Old Vine", "Hoppy", "Amber", "Stout", "Rosé", "Crisp",
          "Barrel", "Harvest", "Summit")
_ACCOLADES = ("90 points", "Gold medal", "Editor's choice", "Best buy")


def owner_updated_at(cfg: DatasetConfig, kind: str, index: int) -> datetime:
    """When an owner's own record was last edited (whole seconds, as the API writes it)."""
    hours = _OFFSETS[hnum(cfg.seed, "owner-tz", kind, index) % len(_OFFSETS)]
    moment = spread_date(cfg.seed, "owner-updated", kind, index).replace(microsecond=0)
    return moment.astimezone(timezone(timedelta(hours=hours)))


def render_owner(cfg: DatasetConfig, kind: str, index: int) -> dict[str, Any]:
    """An owner's record as its list gives it: id, updated_at and descriptive fields."""
    draw = rng(cfg.seed, "owner", kind, index)
    name = " ".join(draw.sample(_WORDS, 2))
    return {
        "id": int(owner_id(kind, index)),
        "name": f"{name} {index + 1}",
        "updated_at": owner_updated_at(cfg, kind, index).isoformat(timespec="seconds"),
        "accolades": draw.sample(_ACCOLADES, draw.randint(0, 2)),
        "characteristics": {"vintage": 1990 + draw.randint(0, 33),
                            "abv": round(draw.uniform(4.0, 15.0), 1)},
        "details": f"{_SINGULAR[kind].replace('_', ' ').title()} number {index + 1}.",
        "hidden_search_terms": name.lower(),
    }


def list_body(kind: str, records: list[dict[str, Any]], shape: str) -> Any:
    """A list answer in one of the shapes the API uses (config.LIST_SHAPES)."""
    if shape == "bare":
        return records
    if shape == "wrapped":
        return {kind: [{_SINGULAR[kind]: record} for record in records]}
    return {kind: records}
