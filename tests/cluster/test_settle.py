"""What a worker placed but never reported is recorded before the bag is sealed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import bagit

from assetvault.archive.journal import Journal, Placed
from assetvault.archive.paths import ArchivePaths
from assetvault.archive.placer import Placer
from assetvault.archive.store import Store
from assetvault.archive.upkeep import seal
from assetvault.cluster.coordinator import settle_workers
from assetvault.storage import LocalStorage

NOW = "2026-12-02 00:00:00"


def _place(paths: ArchivePaths, journal: Journal, name: str) -> Placed:
    body = name.encode() * 100
    placed = Placed(f"k/{name}", "job", f"http://h/{name}", f"job/{name}", len(body),
                    hashlib.sha256(body).hexdigest(), None, None, None)
    source = paths.partial / name
    source.write_bytes(body)
    Placer(LocalStorage(paths.root), journal).place_file(source, placed, None, placed.url)
    return placed


def _archive(tmp_path: Path) -> tuple[ArchivePaths, Store, Journal]:
    paths = ArchivePaths(tmp_path / "archive")
    paths.create()
    (paths.folder / "journals").mkdir()
    journal = Journal(paths.folder / "journals" / "worker-1.log")  # a worker's, as it has one
    journal.open()
    return paths, Store(paths.database), journal


def test_a_file_a_dead_worker_placed_is_recorded_and_the_bag_holds_it(tmp_path: Path) -> None:
    paths, store, journal = _archive(tmp_path)
    reported = _place(paths, journal, "a.bin")
    store.record_placed([reported], NOW)  # its outcome reached the coordinator
    _place(paths, journal, "b.bin")  # the worker died before saying so
    journal.close()
    assert settle_workers(store, LocalStorage(paths.root), paths.folder, NOW) == 1
    seal(store, LocalStorage(paths.root), "assetvault-test")
    bagit.Bag(str(paths.root)).validate()
    assert sorted(path for path, _, _ in store.payload()) == ["job/a.bin", "job/b.bin"]


def test_without_settling_the_bag_would_miss_it(tmp_path: Path) -> None:
    paths, store, journal = _archive(tmp_path)
    _place(paths, journal, "b.bin")
    journal.close()
    seal(store, LocalStorage(paths.root), "assetvault-test")
    try:
        bagit.Bag(str(paths.root)).validate()
    except bagit.BagValidationError:
        return
    raise AssertionError("a bag sealed without the unreported file validated")
