"""Hostile records (placeholder until filled in)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .config import DatasetConfig

SPECIAL_ORGS: tuple[str, ...] = ()
SPECIAL_OWNERS: tuple[str, ...] = ()


def spectrum_records(cfg: DatasetConfig, api_url: str, files_url: str) -> list[Any]:
    return []


def onpremise_assets(cfg: DatasetConfig, files_url: str, since: datetime | None) -> list[Any]:
    return []


def file_paths(cfg: DatasetConfig) -> frozenset[str]:
    return frozenset()


def special_listing(cfg: DatasetConfig, ident: str) -> tuple[str, bytes] | None:
    return None
