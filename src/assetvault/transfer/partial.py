"""A partial download on local disk, and the sidecar that names the version it holds the start
of (what a later run needs to resume it by Range with If-Range)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .resume import Held


@dataclass(slots=True)
class Partial:
    """A partial file and what we know about the bytes in it."""

    folder: str
    name: str
    shown: str  # the URL redacted, once per item rather than once per use
    held: Held | None = None  # the representation the partial file holds the start of
    fetched: int = 0  # bytes received over every attempt
    touched: bool = False  # a partial file or sidecar may exist on disk

    @property
    def path(self) -> Path:
        return Path(self.folder, self.name + ".part")

    @property
    def meta(self) -> Path:
        return Path(self.folder, self.name + ".json")

    def offset(self) -> int:
        """Where a resumed request starts: 0 unless the partial can be named to the server."""
        if self.held is None or self.held.if_range is None:
            return 0
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return 0
        total = self.held.total
        return 0 if total is not None and size >= total else size

    def load(self) -> None:
        """Pick up what a crashed run left beside its partial file."""
        try:
            meta = json.loads(self.meta.read_text())
        except (OSError, ValueError):
            return
        self.touched = True
        if isinstance(meta, dict) and meta.get("url") == self.shown:
            self.held = held_of(meta)

    def save(self) -> None:
        self.touched = True
        held = self.held or Held()
        self.meta.write_text(json.dumps({"url": self.shown, "etag": held.etag,
                                         "last_modified": held.last_modified,
                                         "total": held.total}))

    def discard(self) -> None:
        self.held = None
        for p in (self.path, self.meta):
            p.unlink(missing_ok=True)


def held_of(meta: dict[str, object]) -> Held | None:
    """The sidecar's representation; None (start over) if any field has the wrong type."""
    etag, modified, total = meta.get("etag"), meta.get("last_modified"), meta.get("total")
    if not all(v is None or isinstance(v, str) for v in (etag, modified)):
        return None
    if total is not None and (not isinstance(total, int) or isinstance(total, bool)):
        return None
    return Held(etag, modified, total)  # type: ignore[arg-type]
