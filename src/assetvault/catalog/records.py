"""Records gathered from the state database and the archive, streamed in key order.

Rows come from SQLite one at a time, ordered by key: every key under a record's (or a group's)
folder is contiguous in that order, so a record is complete when the next one starts and no
more than one record is ever held. Documents are read through the archive's storage, bounded.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..storage import DATA, HISTORY, Storage
from .fields import describe, text
from .model import FileEntry, Record, owner_doc, split_key

MAX_DOC = 1 << 20  # an asset.json beyond this is not parsed (its fields stay empty)
HISTORY_NAME = re.compile(
    r"(?P<stem>.*)\.(?P<stamp>\d{8}T\d{6}Z)\.(?P<sha>[0-9a-f]{16})(?P<suffix>\.[^.]*)?", re.S)
_ROWS = ("SELECT key, kind, path, size, sha256, status, error FROM items "
         "WHERE kind IN ('file', 'doc') ORDER BY key")


def open_state(database: Path) -> sqlite3.Connection:
    """The state database, read-only: the catalog never writes the state. Text that is not
    UTF-8 (the state never holds any, but a catalog must not stop on it) is read with U+FFFD."""
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    db.text_factory = lambda raw: raw.decode("utf-8", "replace")
    return db


def rows(db: sqlite3.Connection) -> Iterator[FileEntry]:
    for key, kind, path, size, sha, status, error in db.execute(_ROWS):
        yield FileEntry(str(key), str(kind), path, size, sha, str(status), error)


def records(db: sqlite3.Connection, storage: Storage,
            history: dict[str, list[str]]) -> Iterator[Record]:
    """Every record in key order (so grouped by group), with fields and history filled."""
    current: Record | None = None
    for entry in rows(db):
        group, key = split_key(entry.key)
        if current is None or current.key != key:
            if current is not None:
                yield _finish(current, storage, history)
            current = Record(key=key, group=group)
        if entry.kind == "doc" and current.doc is None:
            current.doc = entry
        else:
            current.files.append(entry)
    if current is not None:
        yield _finish(current, storage, history)


def _finish(record: Record, storage: Storage, history: dict[str, list[str]]) -> Record:
    doc = read_doc(storage, record.doc.path) if record.doc and record.doc.archived else None
    describe(record, doc)
    record.history = history.pop(record.key, [])
    return record


def read_doc(storage: Storage, path: str | None) -> Any:
    """A JSON document under data/, or None when absent, too large or not JSON."""
    if path is None:
        return None
    key = DATA + path
    size = storage.size(key)
    if size is None or size > MAX_DOC:
        return None
    try:
        return json.loads(storage.read(key))
    except (OSError, ValueError, RecursionError):  # RecursionError: '[[[[...' nested deep
        return None


def owner_name(storage: Storage, group: str) -> str | None:
    """An OnPremise owner's name from its own record (``product.json``), if archived."""
    doc = read_doc(storage, owner_doc(group))
    return text(doc.get("name")) or None if isinstance(doc, dict) else None


def history_index(storage: Storage) -> dict[str, list[str]]:
    """Replaced versions by record key, from ``.assetvault/history/{folder}/{stem}.{stamp}.
    {sha256 prefix}{suffix}`` (archive.history): the payload path they replaced gives the
    record, whatever the layout.

    Held whole: replaced versions are few next to the payload (one per upstream change).
    """
    found: dict[str, list[str]] = defaultdict(list)
    try:
        listing = [stored.key for stored in storage.list(HISTORY)]
    except OSError:
        return {}
    for key in sorted(listing):
        folder, _, name = key.removeprefix(HISTORY).rpartition("/")
        match = HISTORY_NAME.fullmatch(name)
        original = f"{match['stem']}{match['suffix'] or ''}" if match else name
        replaced = f"{folder}/{original}"
        found[split_key(replaced)[1]].append(key)
    return dict(found)
