"""SQLite state: every item the archive knows, and every run.

The store is synchronous and used from one thread at a time (the engine funnels every call
through a single-thread executor), so the engine is its only writer. Writes come in batches,
one transaction each. URLs are stored redacted; secrets never reach the database.

``status`` is the state of the archived file: ``complete`` (in ``data/`` and in the bag),
``failed`` or ``pending`` (never archived), ``gone`` (vanished upstream, kept here).
``outcome`` is what the last run that wrote the row made of it.

An unchanged item costs no write: a re-run of a large archive is mostly those, and rewriting
every row each night made the state database a re-run's largest cost. The keys a run saw are
kept in a temporary table instead; at the end of the run :meth:`Store.settle` brings forward
only the rows whose status or outcome says otherwise, and :meth:`Store.mark_gone` reads it.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import msgspec

from ..models import ARCHIVED, DocRecord, Kind, Outcome, Row, State, Status
from .journal import Placed
from .layout import replaceable_stem

SCHEMA_VERSION = 1
_ARCHIVED = "(" + ", ".join(f"'{state}'" for state in sorted(ARCHIVED)) + ")"  # for SQL
_JSON = msgspec.json.Encoder()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    key TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    kind TEXT NOT NULL,             -- 'file' or 'doc' (asset.json)
    url TEXT,                       -- redacted
    path TEXT,                      -- relative to data/
    size INTEGER,
    sha256 TEXT,
    version TEXT,                   -- upstream lastModification / updated_at
    etag TEXT,
    last_modified TEXT,
    status TEXT NOT NULL,           -- complete | failed | pending | gone
    outcome TEXT,                   -- downloaded | up_to_date | failed | pending | recovered
                                    -- (the last run that wrote the row)
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    seen_run INTEGER,               -- the last run that wrote the row (seen-only runs do not)
    updated TEXT
);
CREATE INDEX IF NOT EXISTS items_path ON items(path);
CREATE INDEX IF NOT EXISTS items_job_status ON items(job, status);
CREATE INDEX IF NOT EXISTS items_url ON items(url);
CREATE INDEX IF NOT EXISTS items_retiring ON items(key) WHERE status = 'retiring';
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started TEXT NOT NULL,
    finished TEXT,
    exit_code INTEGER,
    report TEXT
);
CREATE TABLE IF NOT EXISTS pages (  -- remembered listing pages (sources.memo)
    key TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    entries BLOB NOT NULL,
    run INTEGER NOT NULL            -- the last run that listed this page
);
CREATE TABLE IF NOT EXISTS successors (  -- files placed beside an archived one of the same
    key TEXT PRIMARY KEY                 -- name but for the extension: what they replace is
) WITHOUT ROWID;                         -- looked for at the end of a run (archive.retire)
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT
);
CREATE TABLE IF NOT EXISTS owners (  -- `since: last-run`, per OnPremise owner (sources.since)
    job TEXT NOT NULL,
    owner TEXT NOT NULL,
    selection TEXT NOT NULL,        -- what the listing selected (sources.since.selection_of)
    since TEXT NOT NULL,            -- start of the last clean run that listed it so
    PRIMARY KEY (job, owner)
);
CREATE TABLE IF NOT EXISTS job_runs (
    run_id INTEGER NOT NULL,
    job TEXT NOT NULL,
    started TEXT NOT NULL,
    ok INTEGER NOT NULL,
    PRIMARY KEY (run_id, job)
);
"""

_UPSERT_COMPLETE = f"""
INSERT INTO items (key, job, kind, url, path, size, sha256, version, etag, last_modified,
                   status, outcome, attempts, error, seen_run, updated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '{State.COMPLETE}', ?, 0, NULL, ?, ?)
ON CONFLICT(key) DO UPDATE SET
    job = excluded.job, kind = excluded.kind, url = excluded.url, path = excluded.path,
    size = excluded.size, sha256 = excluded.sha256, version = excluded.version,
    etag = excluded.etag, last_modified = excluded.last_modified, status = '{State.COMPLETE}',
    outcome = excluded.outcome, attempts = 0, error = NULL, seen_run = excluded.seen_run,
    updated = excluded.updated
"""

# Rows a run saw unchanged whose row says otherwise: seen again after being marked gone (then
# simply archived again), or last left failed or pending while a complete file stayed.
_SETTLE = f"""
UPDATE items SET outcome = '{Status.UP_TO_DATE}', seen_run = ?, updated = ?,
    status = CASE WHEN status = '{State.GONE}' THEN '{State.COMPLETE}' ELSE status END
WHERE (status = '{State.GONE}' OR outcome IN ('{Status.FAILED}', '{Status.PENDING}'))
    AND +key IN (SELECT key FROM temp.seen)
"""  # "+key": scan items for the few candidates rather than probe items for every key seen

# A failure or a pending file never takes away a complete file already archived.
_UPSERT_NOT_DONE = f"""
INSERT INTO items (key, job, kind, url, path, status, outcome, attempts, error, seen_run,
                   updated, version)
VALUES (?, ?, '{Kind.FILE}', ?, ?, ?, ?, 1, ?, ?, ?, NULL)
ON CONFLICT(key) DO UPDATE SET
    status = CASE WHEN items.status = '{State.COMPLETE}' THEN '{State.COMPLETE}'
                  ELSE excluded.status END,
    outcome = excluded.outcome, attempts = items.attempts + 1, error = excluded.error,
    seen_run = excluded.seen_run, updated = excluded.updated
"""


class Store:
    """The state database of one archive."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        if readonly:
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        else:
            self._db = sqlite3.connect(path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            # Keyed, so the end of the run (settle, mark_gone) probes it instead of sorting
            # it twice; filled a batch per statement from the writer's thread, alongside the
            # event loop. Its cache is raised so a large run's keys stay off the temp file.
            self._db.execute("CREATE TEMP TABLE seen (key TEXT PRIMARY KEY) WITHOUT ROWID")
            self._db.execute("PRAGMA temp.cache_size = -32768")
            self._db.commit()

    def close(self) -> None:
        self._db.close()

    # runs ---------------------------------------------------------------------------------

    def begin_run(self, started: str) -> int:
        cur = self._db.execute("INSERT INTO runs (started) VALUES (?)", (started,))
        self._db.commit()
        assert cur.lastrowid is not None
        return cur.lastrowid

    def finish_run(self, run_id: int, finished: str, exit_code: int, report: str,
                   jobs: Sequence[tuple[str, str, bool]]) -> None:
        """Close a run; ``jobs`` is (name, started, ok) for each job that ran."""
        with self._db:
            self._db.execute("UPDATE runs SET finished = ?, exit_code = ?, report = ? WHERE id = ?",
                             (finished, exit_code, report, run_id))
            self._db.executemany("INSERT OR REPLACE INTO job_runs VALUES (?, ?, ?, ?)",
                                 [(run_id, name, started, int(ok)) for name, started, ok in jobs])

    def owners_since(self, job: str, selection: str) -> dict[str, str]:
        """Per owner key, the start of the last clean run that listed it with ``selection``."""
        try:
            rows = self._db.execute("SELECT owner, since FROM owners WHERE job = ? AND "
                                    "selection = ?", (job, selection)).fetchall()
        except sqlite3.OperationalError:  # a dry run reading an older archive's state
            return {}
        return {str(owner): str(since) for owner, since in rows}

    def record_owners(self, job: str, selection: str, owners: Iterable[str],
                      started: str) -> None:
        """These owners were listed, with ``selection``, by a clean run started then."""
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO owners VALUES (?, ?, ?, ?)",
                                 [(job, owner, selection, started) for owner in owners])

    # items --------------------------------------------------------------------------------

    def rows(self, keys: Sequence[str]) -> dict[str, Row]:
        """The rows of these keys (missing keys are absent from the answer)."""
        return {row.key: row for row in self._rows_where("key", keys, "", ())}

    def _rows_where(self, column: str, values: Sequence[str], more: str,
                    params: tuple[object, ...]) -> Iterator[Row]:
        """Rows whose ``column`` is one of ``values`` and ``more``.

        The values travel as one JSON array: one statement, prepared once, whatever their
        number (a list of ``?`` was a new statement for every length).
        """
        if not values:
            return
        cursor = self._db.execute(
            "SELECT key, url, path, size, sha256, version, status FROM items "
            f"WHERE {column} IN (SELECT value FROM json_each(?)){more}",
            (_json_list(values), *params))
        yield from map(_MAKE_ROW, cursor)  # tuple.__new__ in C: no Python call per row

    def page(self, key: str) -> bytes | None:
        """A remembered listing page's entries (None when unknown, or no table yet)."""
        try:
            row = self._db.execute("SELECT entries FROM pages WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:  # an archive of an older version, read-only
            return None
        return bytes(row[0]) if row else None

    def forget_pages(self, job: str, run_id: int) -> None:
        """After a complete listing: the job's pages this run did not list are not kept."""
        with self._db:
            self._db.execute("DELETE FROM pages WHERE job = ? AND run != ?", (job, run_id))

    def record(self, outcomes: Iterable[Outcome], docs: Iterable[DocRecord], run_id: int,
               now: str, pages: Iterable[tuple[str, str, bytes]] = (),
               seen_keys: Iterable[str] = ()) -> None:
        """Write one batch of results in one transaction; ``seen_keys`` were found
        archived and unchanged."""
        seen: list[str] = list(seen_keys)
        complete, not_done = _rows_of(outcomes, docs, run_id, now, seen)
        with self._db:
            if complete:
                self._note_successors(complete)
                self._db.executemany(_UPSERT_COMPLETE, complete)
                self._unsealed()
            if seen:
                # One statement, so one release of the GIL, not one per key: the writer's
                # thread and the event loop's stats no longer hand it back and forth.
                self._db.execute("INSERT OR IGNORE INTO temp.seen SELECT value FROM json_each(?)",
                                 (_json_list(seen),))
            self._db.executemany(_UPSERT_NOT_DONE, not_done)
            for key, job, entries in pages:  # few: one per listing page
                if entries:
                    self._db.execute("INSERT OR REPLACE INTO pages VALUES (?, ?, ?, ?)",
                                     (key, job, entries, run_id))
                else:  # listed again, unchanged
                    self._db.execute("UPDATE pages SET run = ? WHERE key = ?", (run_id, key))

    def settle(self, run_id: int, now: str) -> int:
        """Bring forward what this run saw unchanged but the rows say otherwise; how many."""
        with self._db:
            return self._db.execute(_SETTLE, (run_id, now)).rowcount

    def record_placed(self, placed: Iterable[Placed], now: str) -> int:
        """Record files a crashed run placed but never committed (from its journal).

        They are complete, but not "fetched in this run": the run decides afresh whether
        they are up to date, and never links another item to them as this run's download.
        """
        rows = [(p.key, p.job, p.kind, p.url, p.path, p.size, p.sha256, p.version, p.etag,
                 p.last_modified, Status.RECOVERED, None, now) for p in placed]
        with self._db:
            self._note_successors(rows)
            self._db.executemany(_UPSERT_COMPLETE, rows)
            self._unsealed()
        return len(rows)

    def fetched_in_run(self, urls: Sequence[str], run_id: int) -> dict[str, Row]:
        """A file already fetched in this run for each of these (redacted) URLs, if any."""
        found: dict[str, Row] = {}
        more = (f" AND seen_run = ? AND outcome = '{Status.DOWNLOADED}' "
                f"AND status = '{State.COMPLETE}' AND kind = '{Kind.FILE}'")
        for row in self._rows_where("url", urls, more, (run_id,)):
            if row.url is not None:
                found.setdefault(row.url, row)
        return found

    def mark_gone(self, job: str, run_id: int) -> int:
        """Files of ``job`` archived before but not listed in this (complete) run."""
        with self._db:
            cur = self._db.execute(
                f"UPDATE items SET status = '{State.GONE}', outcome = NULL WHERE job = ? "
                f"AND status = '{State.COMPLETE}' AND (seen_run IS NULL OR seen_run != ?) "
                "AND key NOT IN (SELECT key FROM temp.seen)", (job, run_id))
        return cur.rowcount

    def mark_gone_owners(self, job: str, run_id: int, records: Sequence[tuple[str, str]]) -> int:
        """Everything under each owner of ``job`` whose record this run did not see: the owners
        a complete list of the account no longer names. ``records`` is (folder prefix, record
        file name) per kind: ``("onpremise/products/", "product.json")``."""
        with self._db:
            folders = [folder for prefix, name in records
                       for folder in self._unseen_records(job, run_id, prefix, name)]
            count = 0
            for folder in folders:
                # '0' follows '/': every key under "folder/" sorts in [folder/, folder0).
                count += self._db.execute(
                    f"UPDATE items SET status = '{State.GONE}', outcome = NULL WHERE job = ? "
                    f"AND key >= ? AND key < ? AND status = '{State.COMPLETE}' "
                    "AND (seen_run IS NULL OR seen_run != ?) "
                    "AND key NOT IN (SELECT key FROM temp.seen)",
                    (job, folder + "/", folder + "0", run_id)).rowcount
        return count

    def _unseen_records(self, job: str, run_id: int, prefix: str, name: str) -> list[str]:
        """Folders ``prefix{id}`` whose ``/{name}`` is archived but was not seen in this run."""
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        cursor = self._db.execute(
            f"SELECT key FROM items WHERE job = ? AND kind = '{Kind.DOC}' "
            f"AND status = '{State.COMPLETE}' "
            "AND key >= ? AND key < ? AND substr(key, -?) = ? "
            "AND (seen_run IS NULL OR seen_run != ?) AND key NOT IN (SELECT key FROM temp.seen)",
            (job, prefix, upper, len(name) + 1, "/" + name, run_id))
        folders = (str(key).rpartition("/")[0] for (key,) in cursor)
        return [f for f in folders if "/" not in f[len(prefix):]]

    # files replaced under another name (archive.retire) --------------------------------------

    def _note_successors(self, rows: Sequence[tuple[object, ...]]) -> None:
        """In the transaction that records them, before they are written: the files among
        ``rows`` (upsert rows) with a replaceable name while another file of that name but
        for the extension is archived (a first run notes none; one probe a file)."""
        found = [(key, stem, stem + "/", key) for key, _, kind, *_ in rows
                 if kind == Kind.FILE and (stem := replaceable_stem(str(key))) is not None]
        if found:
            self._db.executemany(
                "INSERT OR IGNORE INTO successors SELECT ? WHERE EXISTS (SELECT 1 FROM items "
                f"WHERE key >= ? AND key < ? AND key != ? AND status IN {_ARCHIVED})", found)

    def successors(self, run_id: int) -> list[tuple[str, str, str | None, bool]]:
        """(key, job, sha256, seen in this run) of each noted successor still complete; the
        others are forgotten (failed or gone since: they replace nothing)."""
        with self._db:
            self._db.execute(
                "DELETE FROM successors WHERE NOT EXISTS (SELECT 1 FROM items "
                f"WHERE items.key = successors.key AND status = '{State.COMPLETE}')")
        return [(str(k), str(j), s, bool(seen)) for k, j, s, seen in self._db.execute(
            "SELECT s.key, i.job, i.sha256, "
            "i.seen_run IS ? OR s.key IN (SELECT key FROM temp.seen) "
            "FROM successors AS s JOIN items AS i ON i.key = s.key", (run_id,))]

    def unseen_beside(self, job: str, run_id: int, low: str, high: str
                      ) -> list[tuple[str, str, str]]:
        """(key, path, sha256) of the archived files of ``job`` with keys in [low, high) that
        this run did not see."""
        return [(str(k), str(p), str(s)) for k, p, s in self._db.execute(
            f"SELECT key, path, sha256 FROM items WHERE key >= ? AND key < ? AND job = ? "
            f"AND kind = '{Kind.FILE}' AND status IN {_ARCHIVED} AND path IS NOT NULL "
            "AND sha256 IS NOT NULL AND (seen_run IS NULL OR seen_run != ?) "
            "AND key NOT IN (SELECT key FROM temp.seen)", (low, high, job, run_id))]

    def retiring(self) -> list[tuple[str, str]]:
        """(key, path) of every file whose removal from data/ is still to be done."""
        return [(str(k), str(p)) for k, p in self._db.execute(
            f"SELECT key, path FROM items WHERE status = '{State.RETIRING}'")]

    def retire(self, keys: Sequence[str], state: State, now: str,
               done: Sequence[str] = ()) -> None:
        """Set these files to ``state`` (RETIRING: out of the bag's manifest from now on), and
        forget the successors ``done`` in the same transaction."""
        with self._db:
            if keys:
                self._db.execute(
                    "UPDATE items SET status = ?, outcome = NULL, updated = ? "
                    "WHERE key IN (SELECT value FROM json_each(?))",
                    (state, now, _json_list(keys)))
                self._unsealed()
            if done:
                self._db.execute(
                    "DELETE FROM successors WHERE key IN (SELECT value FROM json_each(?))",
                    (_json_list(done),))

    def archived_at(self, path: str, other_than: str) -> bool:
        """Whether an archived file of another key than ``other_than`` is at ``path``."""
        return self._db.execute(
            f"SELECT 1 FROM items WHERE path = ? AND key != ? AND status IN {_ARCHIVED}",
            (path, other_than)).fetchone() is not None

    # the bag's seal -----------------------------------------------------------------------

    def sealed_by(self) -> str | None:
        """The agent of the last seal, if no archived file changed since (else None)."""
        row = self._db.execute("SELECT value FROM meta WHERE name = 'sealed'").fetchone()
        return str(row[0]) if row and row[0] is not None else None

    def set_sealed(self, agent: str) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('sealed', ?)", (agent,))

    def _unsealed(self) -> None:
        """In the transaction that changes an archived file: the bag's manifest is stale."""
        self._db.execute("DELETE FROM meta WHERE name = 'sealed'")

    def payload(self) -> Iterator[tuple[str, str, int]]:
        """(path, sha256, size) of every archived file, sorted by path: the bag's manifest."""
        cur = self._db.execute(
            f"SELECT path, sha256, size FROM items WHERE status IN {_ARCHIVED} "
            "AND path IS NOT NULL AND sha256 IS NOT NULL ORDER BY path")
        for path, sha, size in cur:
            yield str(path), str(sha), int(size)

    def size_of(self, path: str) -> int | None:
        row = self._db.execute(
            f"SELECT size FROM items WHERE path = ? AND status IN {_ARCHIVED}",
            (path,)).fetchone()
        return int(row[0]) if row and row[0] is not None else None

    # status -------------------------------------------------------------------------------

    def counts(self) -> list[tuple[str, str, int]]:
        """(job, status, count) of files, for ``assetvault status``."""
        return [(str(j), str(s), int(n)) for j, s, n in self._db.execute(
            f"SELECT job, status, COUNT(*) FROM items WHERE kind = '{Kind.FILE}' "
            "GROUP BY job, status ORDER BY job, status")]

    def last_runs(self, limit: int = 5) -> list[tuple[int, str, str | None, int | None]]:
        return [(int(i), str(s), f, e) for i, s, f, e in self._db.execute(
            "SELECT id, started, finished, exit_code FROM runs ORDER BY id DESC LIMIT ?",
            (limit,))]

    def last_report(self) -> tuple[int, str] | None:
        """The id and JSON report of the last run that wrote one."""
        row = self._db.execute("SELECT id, report FROM runs WHERE report IS NOT NULL "
                               "ORDER BY id DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def failures(self, limit: int = 50) -> list[tuple[str, str, str | None, str | None]]:
        """(job, key, url, error) of items whose last outcome was a failure."""
        return [(str(j), str(k), u, e) for j, k, u, e in self._db.execute(
            f"SELECT job, key, url, error FROM items WHERE outcome = '{Status.FAILED}' "
            "ORDER BY job, key LIMIT ?", (limit,))]


_MAKE_ROW = functools.partial(tuple.__new__, Row)


def _json_list(values: Sequence[str]) -> str:
    """A JSON array of strings, for ``json_each``; keys may hold any character but NUL."""
    try:
        return _JSON.encode(values).decode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escaped, as SQLite's JSON reads it
        return json.dumps(list(values))


def _rows_of(outcomes: Iterable[Outcome], docs: Iterable[DocRecord], run_id: int, now: str,
             seen: list[str]) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The complete rows and the failed or pending rows of a batch; what needs no row (up to
    date, an asset.json unchanged) goes to ``seen``."""
    complete: list[tuple[object, ...]] = []
    not_done: list[tuple[object, ...]] = []
    for o in outcomes:
        if o.status is Status.DOWNLOADED:
            complete.append((o.key, o.job, Kind.FILE, o.url, o.path, o.size, o.sha256,
                             o.upstream_version, o.etag, o.last_modified, o.status.value,
                             run_id, now))
        elif o.status is Status.UP_TO_DATE:
            seen.append(o.key)
        else:
            state = State.PENDING if o.status is Status.PENDING else State.FAILED
            not_done.append((o.key, o.job, o.url, o.path, state, o.status.value, o.error,
                             run_id, now))
    for d in docs:
        if d.error is not None:
            continue
        if d.written:
            complete.append((d.key, d.job, Kind.DOC, None, d.path, d.size, d.sha256,
                             d.version, None, None, Status.DOWNLOADED, run_id, now))
        else:
            seen.append(d.key)
    return complete, not_done
