"""The sandbox's world: deterministic records, plus the few upstream changes tests make.

Nothing is materialised: a listing page is generated in O(page size) and a file is resolved from
its URL in O(1). The only state is what tests changed (touched, removed, processed), per record,
and the lists of owners a test made answer something else.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any
from urllib.parse import unquote, urlsplit

from . import hostile, onpremise, spectrum
from .config import DatasetConfig
from .detrand import EARLIEST, seconds_ceil, spread_date
from .files import FileSpec, make_spec, read

__all__ = ["Dataset"]


class Dataset:
    """All records and files of a :class:`DatasetConfig`, generated on demand."""

    def __init__(self, config: DatasetConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._touched: dict[tuple[str, int], tuple[int, datetime]] = {}
        self._removed_spectrum: dict[int, list[int]] = {}
        self._removed_assets: set[int] = set()
        self.version = 0  # bumped by every upstream change: caches of listings key on it
        self._processed: dict[int, bool] = {}
        self._removed_owners: dict[str, list[int]] = {}  # kind -> sorted owner indices
        self._list_answers: dict[str, tuple[int, str, bytes]] = {}

    # -- identities -------------------------------------------------------------------------

    def organization_ids(self) -> list[str]:
        ids = [spectrum.organization_id(i) for i in range(self.config.organizations)]
        return ids + (list(hostile.SPECIAL_ORGS) if self.config.hostile else [])

    def owner_ids(self, kind: str) -> list[str]:
        """The owners of ``kind`` that exist (removed ones are not)."""
        removed = self._removed_owners.get(kind, [])
        ids = [onpremise.owner_id(kind, i) for i in range(self.config.owner_count(kind))
               if not _contains(removed, i)]
        return ids + (list(hostile.SPECIAL_OWNERS) if self.config.hostile else [])

    def content_ids(self, org: str) -> list[int]:
        """Content ids listed for a generated organization, in listing order (O(records))."""
        index = self._org_index(org)
        gone = set(self._removed_spectrum.get(index, ()))
        return [spectrum.content_id(self.config, index, i)
                for i in range(self.config.assets_per_org) if i not in gone]

    def asset_ids(self, kind: str, owner: str) -> list[int]:
        """Asset ids listed for a generated owner (not filtered by date)."""
        index = self._owner_index(kind, owner)
        plans = (onpremise.plan_asset(self.config, kind, index, i)
                 for i in range(self.config.assets_per_owner))
        return [p.asset_id for p in plans if p.asset_id not in self._removed_assets]

    # -- upstream changes -------------------------------------------------------------------

    def touch_spectrum(self, org: str, content_id: int) -> None:
        """A new lastModification and new bytes (so a new ETag) for the record's files."""
        self._spectrum_position(org, content_id)
        self.version += 1
        self._touch(("s", content_id), timedelta(milliseconds=1), second_resolution=False)

    def remove_spectrum(self, org: str, content_id: int) -> None:
        org_index, index = self._spectrum_position(org, content_id)
        self.version += 1
        with self._lock:
            removed = self._removed_spectrum.setdefault(org_index, [])
            if index not in removed:
                bisect.insort(removed, index)

    def touch_onpremise(self, kind: str, owner: str, asset_id: int) -> None:
        self._asset_position(kind, owner, asset_id)
        self.version += 1
        self._touch(("o", asset_id), timedelta(seconds=1), second_resolution=True)

    def remove_onpremise(self, kind: str, owner: str, asset_id: int) -> None:
        self._asset_position(kind, owner, asset_id)
        self.version += 1
        self._removed_assets.add(asset_id)

    def remove_owner(self, kind: str, owner: str) -> None:
        """The owner leaves its kind's list; its assets listing and its files answer 404."""
        index = self._owner_index(kind, owner)
        self.version += 1
        with self._lock:
            bisect.insort(self._removed_owners.setdefault(kind, []), index)

    def set_list_answer(self, kind: str, answer: tuple[int, str, bytes] | None) -> None:
        """Answer every request for ``kind``'s list (``/products.json``...) with (status,
        content type, body), whatever its parameters; None goes back to the generated list."""
        self.version += 1
        with self._lock:
            if answer is None:
                self._list_answers.pop(kind, None)
            else:
                self._list_answers[kind] = answer

    def list_answer(self, kind: str) -> tuple[int, str, bytes] | None:
        return self._list_answers.get(kind)

    def set_processed(self, kind: str, owner: str, asset_id: int, processed: bool) -> None:
        """Mark an asset (un)processed; like a Rails save, this bumps ``updated_at`` (not bytes)."""
        self._asset_position(kind, owner, asset_id)
        self.version += 1
        self._processed[asset_id] = processed
        self._touch(("o", asset_id), timedelta(seconds=1), second_resolution=True,
                    new_bytes=False)

    def _touch(self, key: tuple[str, int], step: timedelta, *, second_resolution: bool,
               new_bytes: bool = True) -> None:
        now = datetime.now(UTC)
        moment = seconds_ceil(now) if second_resolution else now.replace(
            microsecond=now.microsecond // 1000 * 1000)
        with self._lock:
            generation, previous = self._touched.get(key, (0, None))
            if previous is not None and moment < previous + step:
                moment = previous + step
            self._touched[key] = (generation + new_bytes, moment)

    # -- listings ---------------------------------------------------------------------------

    def has_organization(self, org: str) -> bool:
        try:
            self._org_index(org)
        except KeyError:
            return False
        return True

    def spectrum_contents(self, org: str, offset: int, limit: int,
                          api_url: str, files_url: str) -> list[Any]:
        """Records ``[offset, offset + limit)`` of an organization; KeyError if unknown."""
        index = self._org_index(org)
        removed = self._removed_spectrum.get(index, [])
        alive = self.config.assets_per_org - len(removed)
        out: list[Any] = []
        i = _nth_alive(removed, offset) if offset < alive else self.config.assets_per_org
        while len(out) < limit and i < self.config.assets_per_org:
            if not _contains(removed, i):
                plan = spectrum.plan_record(self.config, index, i)
                touched = self._touched.get(("s", plan.content_id))
                out.append(spectrum.render_record(self.config, plan, touched and touched[1],
                                                  api_url, files_url))
            i += 1
        if self.config.hostile and index == 0 and len(out) < limit:
            extra = hostile.spectrum_records(self.config, api_url, files_url)
            start = max(0, offset - alive)
            out += extra[start:start + limit - len(out)]
        return out

    def owner_records(self, kind: str, since: datetime | None, offset: int,
                      limit: int | None) -> list[dict[str, Any]]:
        """Owners ``[offset, offset + limit)`` of ``kind``'s list, edited after ``since``."""
        count = self.config.owner_count(kind)
        removed = self._removed_owners.get(kind, [])
        limit = count if limit is None else limit
        if since is None or since < EARLIEST:  # nothing to filter: straight to the offset
            alive = count - len(removed)
            i = _nth_alive(removed, offset) if offset < alive else count
            indices: Iterable[int] = (j for j in range(i, count) if not _contains(removed, j))
        else:
            indices = islice((j for j in range(count) if not _contains(removed, j)
                              and onpremise.owner_updated_at(self.config, kind, j) > since),
                             offset, None)
        return [onpremise.render_owner(self.config, kind, j) for j in islice(indices, limit)]

    def onpremise_assets(self, kind: str, owner: str, since: datetime | None,
                         files_url: str) -> list[Any]:
        """The assets of an owner updated after ``since``; KeyError if unknown."""
        index = self._owner_index(kind, owner)
        out: list[Any] = []
        for i in range(self.config.assets_per_owner):
            plan = onpremise.plan_asset(self.config, kind, index, i)
            if plan.asset_id in self._removed_assets:
                continue
            updated = self._asset_updated_at(plan)
            if since is None or updated > since:
                original = self.file_spec(plan.original_path())
                size = original.size if original else 0
                processed = self._processed.get(plan.asset_id, plan.processed)
                out.append(onpremise.render_asset(plan, updated, processed, size, files_url))
        if self.config.hostile and index == 0 and kind == "products":
            sizes = {path: spec.size for path in hostile.SIZED_PATHS
                     if (spec := self.file_spec(path)) is not None}
            out += hostile.onpremise_assets(self.config, files_url, since, sizes)
        return out

    def _asset_updated_at(self, plan: onpremise.AssetPlan) -> datetime:
        base = onpremise.base_updated_at(self.config, plan)
        touched = self._touched.get(("o", plan.asset_id))
        return touched[1].astimezone(base.tzinfo) if touched else base

    # -- files ------------------------------------------------------------------------------

    def file_spec(self, path: str, variant: int = 0) -> FileSpec | None:
        """The current version of the file served at ``path``, or None (404)."""
        found = self._file_owner(path)
        if found is None:
            return None
        key, modified = found
        generation, touched_at = self._touched.get(key, (0, modified))
        cfg = self.config
        return make_spec(cfg.seed, path, generation, touched_at, cfg.file_size_min,
                         cfg.file_size_max, variant)

    def file_bytes(self, path: str) -> bytes:
        """The exact content currently served at ``path`` (a URL path or a whole URL)."""
        if "://" in path:
            path = unquote(urlsplit(path).path)
        spec = self.file_spec(path)
        if spec is None:
            raise KeyError(path)
        return read(spec, 0, spec.size)

    def _file_owner(self, path: str) -> tuple[tuple[str, int], datetime] | None:
        """The touch key and base modification time of the record serving ``path``."""
        if self.config.hostile and path in hostile.file_paths(self.config):
            return ("h", 0), datetime(2022, 1, 1, tzinfo=UTC)
        if path.startswith("/rackcdn/"):
            return self._asset_file_owner(path)
        cid: int | None = None
        if path.startswith("/cdn/assets/UserUpload/"):
            cid = spectrum.content_id_of_upload(path.rsplit("/", 1)[-1])
        elif path.startswith(f"/blob/{self.config.client}/embroidery/"):
            parts = path.split("/")
            cid = spectrum.content_id_of_reference(parts[4]) if len(parts) == 6 else None
        where = None if cid is None else spectrum.locate(self.config, cid)
        if where is None or _contains(self._removed_spectrum.get(where[0], []), where[1]):
            return None
        plan = spectrum.plan_record(self.config, *where)
        if path not in plan.file_paths(self.config.client):
            return None
        created = spread_date(self.config.seed, "created", plan.content_id)
        return ("s", plan.content_id), created.replace(microsecond=0)

    def _asset_file_owner(self, path: str) -> tuple[tuple[str, int], datetime] | None:
        asset_id = onpremise.asset_path_id(path)
        where = None if asset_id is None else onpremise.locate(self.config, asset_id)
        if (where is None or asset_id in self._removed_assets
                or _contains(self._removed_owners.get(where[0], []), where[1])):
            return None
        plan = onpremise.plan_asset(self.config, *where)
        processed = self._processed.get(plan.asset_id, plan.processed)
        # Versions of an unprocessed asset do not exist yet; its original does.
        versions = {plan.version_path(name) for name in plan.versions} if processed else set()
        if path != plan.original_path() and path not in versions:
            return None
        return ("o", plan.asset_id), onpremise.base_updated_at(self.config, plan)

    # -- lookups ----------------------------------------------------------------------------

    def _org_index(self, org: str) -> int:
        ids = range(self.config.organizations)
        index = int(org) - int(spectrum.organization_id(0)) if org.isdigit() else -1
        if index not in ids:
            raise KeyError(org)
        return index

    def _owner_index(self, kind: str, owner: str) -> int:
        index = onpremise.owner_index(self.config, kind, owner)
        if index is None or _contains(self._removed_owners.get(kind, []), index):
            raise KeyError(f"{kind}/{owner}")
        return index

    def _spectrum_position(self, org: str, content_id: int) -> tuple[int, int]:
        where = spectrum.locate(self.config, content_id)
        if where is None or where[0] != self._org_index(org):
            raise KeyError(f"content {content_id} is not in organization {org}")
        return where

    def _asset_position(self, kind: str, owner: str, asset_id: int) -> tuple[str, int, int]:
        where = onpremise.locate(self.config, asset_id)
        if where is None or where[:2] != (kind, self._owner_index(kind, owner)):
            raise KeyError(f"asset {asset_id} is not in {kind}/{owner}")
        return where


def _contains(ordered: list[int], value: int) -> bool:
    at = bisect.bisect_left(ordered, value)
    return at < len(ordered) and ordered[at] == value


def _nth_alive(removed: list[int], position: int) -> int:
    """The index of the ``position``-th index not in ``removed`` (sorted), in O(log² n)."""
    index = position
    while True:
        candidate = position + bisect.bisect_right(removed, index)
        if candidate == index:
            if not _contains(removed, index):
                return index
            candidate += 1
        index = candidate
