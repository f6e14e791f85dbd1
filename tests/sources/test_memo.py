"""Remembered listing pages (sources.memo): an unchanged page is not mapped again, yet every
file and asset.json it names is still checked against the state and the disk."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import msgspec

from assetvault.models import Document, Item, KnownDocument, ListingFailure
from assetvault.redact import Redactor
from assetvault.sandbox import SandboxThread
from assetvault.sources import memo

from ..conftest import run_cli, spectrum_job, write_manifest


def run_ok(manifest: Path) -> None:
    result = run_cli("run", manifest, "--no-progress")
    assert result.code == 0, result.err
    assert "Traceback" not in result.err


def query(archive: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(archive / ".assetvault" / "state.sqlite") as db:
        return list(db.execute(sql))


def file_requests(box: SandboxThread) -> dict[str, int]:
    return {p: n for p, n in box.counts.items() if not p.startswith("/api/")}


# -- the pure part ------------------------------------------------------------------------------


def test_split_page_takes_plain_pages_only() -> None:
    records = memo.split_page(b'{"error": null, "hash": "x", "contents": [{"id": 1}, [2]]}')
    assert records is not None and [bytes(r) for r in records] == [b'{"id": 1}', b"[2]"]
    assert memo.split_page(b'{"error": "down", "contents": []}') is None
    assert memo.split_page(b'[{"id": 1}]') is None
    assert memo.split_page(b'{"contents": "no"}') is None
    assert memo.split_page(b"<html>") is None


def test_page_key_depends_on_records_and_settings() -> None:
    a = memo.split_page(b'{"contents": [{"id": 1}, {"id": 2}]}')
    b = memo.split_page(b'{"contents": [{"id":1}, {"id": 2}]}')  # other bytes, same JSON
    c = memo.split_page(b'{"contents": [{"id": 1},\n {"id": 2}]}')  # only between records
    assert a is not None and b is not None and c is not None
    one, two = memo.fingerprint("job", ["original"]), memo.fingerprint("job", ["outputs"])
    assert memo.page_key(one, a) == memo.page_key(one, a)
    assert memo.page_key(one, a) != memo.page_key(two, a)
    assert memo.page_key(one, a) != memo.page_key(one, b)
    assert memo.page_key(one, a) == memo.page_key(one, c)


def test_remember_and_recall_round_trip() -> None:
    doc = Document("f/asset.json", "j", "f/asset.json", b'{"id":1}', "v1")
    item = Item("f/original.png", "j", "http://h/a.png", "f/original.png", 12, "ab" * 16, "v1",
                True, False)
    blob = memo.remember(["1"], [doc, item], {doc.key: 0}, Redactor())
    assert blob is not None

    def rebuild(index: int, path: str, version: str | None) -> Document:
        assert (index, path, version) == (0, doc.path, "v1")
        return doc

    identities, entries = memo.recall(blob, "j", rebuild, 1)
    assert identities == ["1"]
    known, again = entries
    assert again == item
    assert isinstance(known, KnownDocument)
    assert (known.key, known.path, known.size) == (doc.key, doc.path, len(doc.body))
    assert known.sha256 == hashlib.sha256(doc.body).hexdigest()
    assert known.rebuild() is doc
    failure = ListingFailure("j", "f", "http://h", "bad")
    assert memo.remember(["1"], [doc, failure], {doc.key: 0}, Redactor()) is None
    assert msgspec.json.decode(blob)  # plain JSON in the state


def test_a_url_with_a_credential_is_not_remembered() -> None:
    doc = Document("f/asset.json", "j", "f/asset.json", b"{}", None)
    signed = Item("f/a.dst", "j", "https://blob/a.dst?sv=1&sig=SECRET", "f/a.dst")
    assert memo.remember(["1"], [doc, signed], {doc.key: 0}, Redactor()) is None
    # The job's own secret under a parameter name nobody would guess: only its redactor knows.
    odd = Item("f/b.dst", "j", "https://blob/b.dst?x-tok=Tok-9f8e7d", "f/b.dst")
    assert memo.remember(["1"], [doc, odd], {doc.key: 0}, Redactor()) is not None
    assert memo.remember(["1"], [doc, odd], {doc.key: 0}, Redactor(["Tok-9f8e7d"])) is None


def test_a_damaged_memo_is_refused() -> None:
    doc = Document("f/asset.json", "j", "f/asset.json", b"{}", None)
    good = memo.remember(["1"], [doc], {doc.key: 0}, Redactor())
    assert good is not None

    def rebuild(index: int, path: str, version: str | None) -> Document:
        return doc

    assert memo.recall(good, "j", rebuild, 1)[0] == ["1"]
    for bad in (b"[[], []]", b'[["1"], []]', b'[["1"], [[]]]', b'[["1"], [["d", 1]]]',
                b'[["1"], [["d", "k", "p", "s", 2, null, 5]]]', b'{"x": 1}', b"\xff"):
        try:
            memo.recall(bad, "j", rebuild, 1)
        except (ValueError, msgspec.DecodeError, msgspec.ValidationError):
            continue
        raise AssertionError(f"accepted {bad!r}")
    try:
        memo.recall(good, "j", rebuild, 2)  # the page has another number of records
    except ValueError:
        pass
    else:
        raise AssertionError("accepted a memo of another page")


# -- through the CLI ----------------------------------------------------------------------------


def test_a_remembered_page_still_brings_back_what_was_deleted(sandbox: SandboxThread,
                                                              tmp_path: Path) -> None:
    org = sandbox.dataset.organization_ids()[0]
    manifest = write_manifest(tmp_path, [spectrum_job(sandbox, organizations=[org],
                                                      include=["original"])])
    archive = tmp_path / "archive"
    run_ok(manifest)
    assert query(archive, "SELECT COUNT(*) FROM pages")[0][0] > 0, "no page was remembered"
    run_ok(manifest)  # recalled: nothing to do
    originals = sorted(str(p) for (p,) in query(
        archive, "SELECT path FROM items WHERE kind = 'file' AND status = 'complete'"))
    docs = sorted(str(p) for (p,) in query(
        archive, "SELECT path FROM items WHERE kind = 'doc' AND status = 'complete'"))
    lost_file, lost_doc = archive / "data" / originals[0], archive / "data" / docs[-1]
    doc_bytes = lost_doc.read_bytes()
    lost_file.unlink()
    lost_doc.unlink()
    sandbox.reset_counts()

    run_ok(manifest)
    assert lost_doc.read_bytes() == doc_bytes
    assert lost_file.is_file()
    assert sum(file_requests(sandbox).values()) == 1
    last_run = query(archive, "SELECT MAX(id) FROM runs")[0][0]
    assert {run for (run,) in query(archive, "SELECT run FROM pages")} == {last_run}
    assert run_cli("verify", archive).code == 0


def test_other_settings_do_not_recall_a_page(sandbox: SandboxThread, tmp_path: Path) -> None:
    org = sandbox.dataset.organization_ids()[0]
    job = spectrum_job(sandbox, organizations=[org], include=["original"])
    run_ok(write_manifest(tmp_path, [job]))
    sandbox.reset_counts()
    run_ok(write_manifest(tmp_path, [{**job, "include": ["original", "outputs"]}]))
    fetched = file_requests(sandbox)
    assert fetched, "the outputs the new setting asks for were not fetched"
    assert not any(p.startswith("/cdn/") for p in fetched), fetched  # originals: up to date
    archive = tmp_path / "archive"
    assert query(archive, "SELECT COUNT(*) FROM items WHERE path LIKE '%/jobs/%' "
                          "AND status = 'complete'")[0][0] > 0
    assert run_cli("verify", archive).code == 0


def test_a_page_holding_a_secret_is_not_remembered(sandbox: SandboxThread,
                                                    tmp_path: Path) -> None:
    org = sandbox.dataset.organization_ids()[0]
    # A header value that every record contains: scrubbed from asset.json, so the page's
    # documents depend on the secrets and must not be remembered.
    job = spectrum_job(sandbox, organizations=[org], include=["original"],
                       headers={"X-Client": "carhartt"})
    manifest = write_manifest(tmp_path, [job])
    run_ok(manifest)
    run_ok(manifest)
    archive = tmp_path / "archive"
    assert query(archive, "SELECT COUNT(*) FROM pages") == [(0,)]
    some_doc = next((archive / "data").rglob("asset.json"))
    assert b"carhartt" not in some_doc.read_bytes()
