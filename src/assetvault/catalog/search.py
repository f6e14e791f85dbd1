"""The search index: compact rows in script files, loaded by the browser only on a search.

``search/s{n}.js`` calls ``AV.shard(n, pages, rows)``; each row is ``[name, reference, id,
formats, state, page, anchor]`` with ``page`` an index into that shard's ``pages``, each a
``[file, group title]`` pair (so a search for an organization or a product finds its records).
``search/meta.js`` says how many shards there are. Script files rather than JSON because a
page opened from the file system may not ``fetch()`` files beside it (Chromium blocks it).
Rows are written as they come, :data:`SHARD` at a time, so memory does not grow with the
archive; a 1,000,000-record archive is 200 shards of about half a megabyte.
"""

from __future__ import annotations

import json

from ..storage import Storage
from .model import Record

SHARD = 5000


def _js(value: object) -> str:
    """JSON as a JavaScript literal: ASCII only, and no ``<``, ``>`` or ``&`` at all, so that
    not even a search of the files for markup finds a tag in a name."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class SearchIndex:
    """Writes the shards of one build."""

    def __init__(self, storage: Storage, root: str) -> None:
        self._storage = storage
        self._root = root
        self._rows: list[list[object]] = []
        self._pages: dict[tuple[str, str], int] = {}
        self._formats: set[str] = set()
        self.shards = 0
        self.records = 0

    def add(self, record: Record, page: str, title: str) -> None:
        index = self._pages.setdefault((page, title), len(self._pages))
        formats = record.formats
        self._formats.update(formats[:20])
        self._rows.append([record.name, record.reference, record.ident, " ".join(formats),
                           record.state, index, record.anchor])
        self.records += 1
        if len(self._rows) >= SHARD:
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        text = (f"AV.shard({self.shards},{_js([list(p) for p in self._pages])},"
                f"{_js(self._rows)});\n")
        self._storage.put_bytes(f"{self._root}search/s{self.shards}.js",
                                text.encode("utf-8"))
        self.shards += 1
        self._rows, self._pages = [], {}

    def close(self) -> None:
        self._flush()
        formats = sorted(self._formats)[:200]
        meta = {"shards": self.shards, "records": self.records, "formats": formats}
        self._storage.put_bytes(f"{self._root}search/meta.js",
                                f"AV.meta({_js(meta)});\n".encode())
