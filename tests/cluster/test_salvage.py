"""What a dead worker placed, read back from its journal: only this run's entries, and only
bytes in place that hash to what was journaled, answer an item without a fetch."""

from __future__ import annotations

import hashlib
from pathlib import Path

from assetvault.archive.journal import Journal, Placed
from assetvault.cluster.salvage import journal_name, placed_by_workers
from assetvault.models import Item, Status
from assetvault.storage import LocalStorage

RUN = "assetvault-0123456789abcdef"


def _item(key: str, version: str = "v1") -> Item:
    return Item(key, "job", f"http://files/{key}", f"job/{key}.bin", upstream_version=version)


def _place(root: Path, journal: Journal, key: str, body: bytes, *, in_place: bytes | None = None,
           version: str = "v1") -> None:
    """Journal ``body`` for ``key``; put ``in_place`` (default: ``body``) at its path."""
    path = f"job/{key}.bin"
    journal.append(Placed(key, "job", f"http://files/{key}", path, len(body),
                          hashlib.sha256(body).hexdigest(), version, None, None))
    if in_place is not None or body:
        target = root / "data" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body if in_place is None else in_place)


def test_only_this_runs_whole_verified_placements_answer_their_items(tmp_path: Path) -> None:
    state = tmp_path / ".assetvault"
    (state / "journals").mkdir(parents=True)
    mine = Journal(state / "journals" / journal_name(RUN, "w1"))
    earlier = Journal(state / "journals" / journal_name("assetvault-ffffffffffffffff", "w9"))
    for journal in (mine, earlier):
        journal.open()
    _place(tmp_path, mine, "whole", b"all of it")
    _place(tmp_path, mine, "torn", b"all of it", in_place=b"all of")  # the rename never came
    _place(tmp_path, mine, "other", b"same size", in_place=b"SAME SIZE")
    _place(tmp_path, mine, "older", b"an old version", version="v0")
    _place(tmp_path, earlier, "before", b"from another run")
    _place(tmp_path, mine, "unasked", b"not in the batch")
    for journal in (mine, earlier):
        journal.close()
    items = [_item(k) for k in ("whole", "torn", "other", "older", "before", "missing")]

    found = placed_by_workers(state, RUN, LocalStorage(tmp_path), items)

    assert [(o.key, o.status, o.path, o.size) for o in found] == [
        ("whole", Status.DOWNLOADED, "job/whole.bin", 9)]
    assert found[0].sha256 == hashlib.sha256(b"all of it").hexdigest()
    assert found[0].upstream_version == "v1"
