"""What a dead worker placed, read back from its journal: only this run's and this worker's
entries, and only bytes in place that hash to what was journaled, answer an item without a
fetch."""

from __future__ import annotations

import hashlib
from pathlib import Path

from assetvault.archive.journal import Journal, Placed
from assetvault.cluster.salvage import journal_name, objects_placed, read_entries, verified
from assetvault.models import Item, Outcome, Status
from assetvault.storage import LocalStorage, Meta

from ..seaweed import SeaweedS3
from ..test_s3_cli import bucket, storage_of

RUN = "assetvault-0123456789abcdef"
DEAD = "tcp://127.0.0.1:40001"


def _item(key: str, version: str = "v1") -> Item:
    return Item(key, "job", f"http://files/{key}", f"job/{key}.bin", upstream_version=version)


def _journal(state: Path, run: str, worker: str, unique: str = "a1") -> Journal:
    journal = Journal(state / "journals" / journal_name(run, worker, unique))
    journal.open()
    return journal


def _place(root: Path, journal: Journal, key: str, body: bytes, *, in_place: bytes | None = None,
           version: str = "v1") -> None:
    """Journal ``body`` for ``key``; put ``in_place`` (default: ``body``) at its path."""
    path = f"job/{key}.bin"
    journal.append(Placed(key, "job", f"http://files/{key}", path, len(body),
                          hashlib.sha256(body).hexdigest(), version, None, None))
    target = root / "data" / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(body if in_place is None else in_place)


def _salvaged(root: Path, worker: str, items: list[Item]) -> list[Outcome]:
    entries = read_entries(root / ".assetvault", RUN, worker, {(i.job, i.key) for i in items})
    return verified(LocalStorage(root), entries, items)


def test_only_this_runs_whole_verified_placements_answer_their_items(tmp_path: Path) -> None:
    state = tmp_path / ".assetvault"
    (state / "journals").mkdir(parents=True)
    mine = _journal(state, RUN, DEAD)
    earlier = _journal(state, "assetvault-ffffffffffffffff", DEAD)
    alive = _journal(state, RUN, "tcp://127.0.0.1:4000")  # a prefix of the dead one's port
    _place(tmp_path, mine, "whole", b"all of it")
    _place(tmp_path, mine, "torn", b"all of it", in_place=b"all of")  # the rename never came
    _place(tmp_path, mine, "other", b"same size", in_place=b"SAME SIZE")
    _place(tmp_path, mine, "older", b"an old version", version="v0")
    _place(tmp_path, earlier, "before", b"from another run")
    _place(tmp_path, alive, "living", b"a worker still alive reports its own")
    _place(tmp_path, mine, "unasked", b"not in the batch")
    for journal in (mine, earlier, alive):
        journal.close()
    items = [_item(k) for k in ("whole", "torn", "other", "older", "before", "living",
                                "missing")]

    found = _salvaged(tmp_path, DEAD, items)

    assert [(o.key, o.status, o.path, o.size) for o in found] == [
        ("whole", Status.DOWNLOADED, "job/whole.bin", 9)]
    assert found[0].sha256 == hashlib.sha256(b"all of it").hexdigest()
    assert found[0].upstream_version == "v1"


def test_an_item_journaled_twice_is_answered_by_the_bytes_in_place(tmp_path: Path) -> None:
    state = tmp_path / ".assetvault"
    (state / "journals").mkdir(parents=True)
    first, second = (_journal(state, RUN, DEAD, unique) for unique in ("z9", "a1"))
    _place(tmp_path, first, "twice", b"the first version's bytes")
    _place(tmp_path, second, "twice", b"the second one, in place")
    for journal in (first, second):
        journal.close()

    found = _salvaged(tmp_path, DEAD, [_item("twice")])

    assert [o.sha256 for o in found] == [hashlib.sha256(b"the second one, in place").hexdigest()]


def test_an_object_answers_its_item_only_if_its_metadata_names_it_and_its_bytes_match(
        seaweed: SeaweedS3, tmp_path: Path) -> None:
    store = storage_of(seaweed, f"s3://{bucket(seaweed)}/salvage", tmp_path)

    def put(path: str, key: str, body: bytes, *, claimed: bytes | None = None,
            version: str = "v1", url: str | None = None) -> None:
        sha = hashlib.sha256(body if claimed is None else claimed).hexdigest()
        store.put_bytes("data/" + path, body, Meta(
            sha, url or f"http://files/{key}", version, key, "job", "file"))

    put("job/whole.bin", "whole", b"all of it")
    put("job/lying.bin", "lying", b"these bytes", claimed=b"other bytes")
    put("job/older.bin", "older", b"an old version", version="v0")
    put("job/moved.bin", "moved", b"from the URL it had before", url="http://old/moved")
    put("job/kept.bin", "kept", b"what this run set out to replace")
    put("job/sized.bin", "sized", b"not the size the API listed")
    put("job/url.bin", "url", b"a URL's, no version")
    put("job/other.bin", "whose", b"written for another item")
    put("job/ext.png", "ext", b"named from its Content-Type")
    put("job/extra.png", "extra", b"its stem only starts like ext's")
    put("job/bare", "bare", b"no Content-Type gave it an extension")
    lost = [(_item("whole"), None), (_item("lying"), None), (_item("older"), None),
            (_item("missing"), None), (_item("moved"), None),
            (_item("kept"), hashlib.sha256(b"what this run set out to replace").hexdigest()),
            (Item("sized", "job", "http://files/sized", "job/sized.bin", expected_size=3,
                  upstream_version="v1"), None),
            (Item("url", "job", "http://files/url", "job/url.bin"), None),
            (Item("other", "job", "http://files/other", "job/other.bin",
                  upstream_version="v1"), None),
            (Item("ext", "job", "http://files/ext", "job/ext", upstream_version="v1",
                  add_extension=True), None),
            (Item("extra", "job", "http://files/extra", "job/ext", upstream_version="v1",
                  add_extension=True), None),
            (Item("bare", "job", "http://files/bare", "job/bare", upstream_version="v1",
                  add_extension=True), None)]

    found = objects_placed(store, lambda url: url, lost)

    assert sorted((o.key, o.path, o.size) for o in found) == [
        ("bare", "job/bare", 36), ("ext", "job/ext.png", 27), ("whole", "job/whole.bin", 9)]
    assert all(o.sha256 and o.status is Status.DOWNLOADED for o in found)
