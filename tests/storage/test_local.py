"""The local folder behind the storage seam: whole objects or nothing, never outside its place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assetvault.storage import LocalStorage, Stored, UnsafeKeyError


def test_an_upload_is_invisible_until_committed_and_gone_when_aborted(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    upload = store.upload("data/a/b.bin")
    upload.write(b"half")
    assert store.size("data/a/b.bin") is None
    upload.write(b" and the rest")
    upload.commit()
    assert store.read("data/a/b.bin") == b"half and the rest"
    aborted = store.upload("data/a/b.bin")
    aborted.write(b"something else")
    aborted.abort()
    assert store.read("data/a/b.bin") == b"half and the rest"
    assert not os.listdir(tmp_path / ".assetvault/partial"), "a temporary file was left"


def test_a_copy_is_a_link_and_whole(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.put_bytes("data/x.bin", b"x" * 1000)
    store.copy("data/x.bin", ".assetvault/history/x.1.bin")
    assert store.read(".assetvault/history/x.1.bin") == b"x" * 1000
    assert (os.stat(tmp_path / "data/x.bin").st_ino
            == os.stat(tmp_path / ".assetvault/history/x.1.bin").st_ino)


def test_a_folder_that_resolves_elsewhere_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "archive"
    (root / "data").mkdir(parents=True)
    (root / "data" / "evil").symlink_to(outside)
    (root / "data" / "state").symlink_to(root / ".assetvault", target_is_directory=True)
    store = LocalStorage(root)
    for key in ("data/evil/x.bin", "data/state/x.bin"):
        with pytest.raises(UnsafeKeyError):
            store.put_bytes(key, b"x")
    assert not list(outside.iterdir())


def test_only_a_tag_file_can_be_retracted(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.put_bytes("data/keep.bin", b"payload")
    store.put_bytes("tagmanifest-sha256.txt", b"tags")
    store.retract("tagmanifest-sha256.txt")
    assert store.size("tagmanifest-sha256.txt") is None
    with pytest.raises(UnsafeKeyError):
        store.retract("data/keep.bin")
    assert store.read("data/keep.bin") == b"payload"


def test_listing_sees_plain_files_under_a_prefix_only(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    for key in ("data/a/1.bin", "data/a/2.bin", "data/b.bin", "bagit.txt"):
        store.put_bytes(key, key.encode())
    (tmp_path / "data" / "link.bin").symlink_to(tmp_path / "bagit.txt")
    assert sorted(store.list("data/a/"), key=str) == [Stored("data/a/1.bin", 12),
                                                       Stored("data/a/2.bin", 12)]
    assert sorted(s.key for s in store.list("data/")) == ["data/a/1.bin", "data/a/2.bin",
                                                          "data/b.bin"]
    assert store.size("data/link.bin") is None


def test_sweep_removes_what_a_killed_writer_left(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.upload("data/x.bin").write(b"never committed")  # the process "dies" here
    store.upload("manifest-sha256.txt").write(b"half a manifest")
    (tmp_path / ".assetvault/partial/keep.part").write_bytes(b"a resumable download")
    store.sweep()
    assert os.listdir(tmp_path / ".assetvault/partial") == ["keep.part"]
    assert not [p for p in tmp_path.iterdir() if p.is_file()]


def test_a_file_outside_is_never_copied_into_the_history(tmp_path: Path) -> None:
    """A symlinked folder under data/ pointing elsewhere: the file it shows is not ours, so
    keeping 'its' history must not link it in (the write is refused anyway)."""
    from assetvault.archive.history import keep_history

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.bin").write_bytes(b"someone else's")
    root = tmp_path / "archive"
    (root / "data").mkdir(parents=True)
    (root / "data" / "evil").symlink_to(outside)
    store = LocalStorage(root)
    with pytest.raises(UnsafeKeyError):
        keep_history(store, "data/evil/x.bin", None)
    assert not (root / ".assetvault" / "history").exists() or not list(
        (root / ".assetvault" / "history").rglob("*.bin"))


def test_only_payload_files_are_removed_and_never_through_a_folder_elsewhere(
        tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.bin").write_bytes(b"theirs")
    root = tmp_path / "archive"
    store = LocalStorage(root)
    store.put_bytes("data/a/original.png", b"old")
    store.copy("data/a/original.png", ".assetvault/history/a/original.1.png")
    store.remove("data/a/original.png")
    store.remove("data/a/original.png")  # already gone: nothing to do
    assert store.size("data/a/original.png") is None
    assert store.read(".assetvault/history/a/original.1.png") == b"old"
    with pytest.raises(UnsafeKeyError):
        store.remove(".assetvault/history/a/original.1.png")
    os.symlink(outside, root / "data/evil")
    with pytest.raises(UnsafeKeyError):
        store.remove("data/evil/x.bin")
    assert (outside / "x.bin").read_bytes() == b"theirs"
