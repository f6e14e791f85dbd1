"""placer: bytes reach their final path under data/ only whole: named once whole (a new
file), or renamed from beside it (one that replaces another).

The streamed path is pinned end to end in test_crash (a server holds a body half-way); a
small body is read whole and written here in one step, too fast to catch from outside, so the
writes themselves are watched.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from assetvault.archive.journal import Journal, Placed
from assetvault.archive.paths import ArchivePaths
from assetvault.archive.placer import Placer
from assetvault.storage import LocalStorage

BODY = bytes(range(256)) * 1024  # 256 KiB: what fetch reads whole and places in one step


def make(tmp_path: Path) -> tuple[ArchivePaths, Journal, Placer]:
    paths = ArchivePaths(tmp_path / "archive")
    paths.create()
    journal = Journal(paths.journal)
    journal.open()
    return paths, journal, Placer(LocalStorage(paths.root), journal)


def placed(path: str, body: bytes = BODY) -> Placed:
    return Placed("k/" + path, "job", "http://h/x", path, len(body),
                  hashlib.sha256(body).hexdigest(), None, None, None)


def _watched_writes(monkeypatch: pytest.MonkeyPatch, final: Path,
                    place: Callable[[], None]) -> list[tuple[bool, str]]:
    """Whether ``final`` existed at each write ``place`` made, and what the write went to
    (short writes: the loop must finish the body)."""
    seen: list[tuple[bool, str]] = []
    real_write = os.write

    def watched(fd: int, data: bytes | memoryview) -> int:
        seen.append((final.exists(), os.readlink(f"/proc/self/fd/{fd}")))
        return real_write(fd, data[:4096])

    monkeypatch.setattr(os, "write", watched)
    place()
    monkeypatch.undo()
    return seen


def test_a_new_small_body_is_written_unnamed_then_named(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    paths, journal, placer = make(tmp_path)
    final = paths.data / "a/b/original.png"
    seen = _watched_writes(monkeypatch, final, lambda: placer.place_bytes(
        BODY, placed("a/b/original.png"), None, "http://h/x"))
    journal.close()
    body_writes = [(visible, t) for visible, t in seen if Path(t) != paths.journal.resolve()]
    assert len(body_writes) == len(BODY) // 4096
    assert not any(visible for visible, _ in body_writes), "the final path was being written"
    # An O_TMPFILE file: no name at all until it is whole (this file system has them).
    assert all(t.endswith("(deleted)") and Path(t).parent == final.parent
               for _, t in body_writes), body_writes
    assert final.read_bytes() == BODY
    assert not list(paths.partial.iterdir())
    assert [p.path for p in journal.replay()] == ["a/b/original.png"]


def test_without_unnamed_files_a_new_body_is_written_beside_then_renamed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths, journal, placer = make(tmp_path)
    assert isinstance(placer.storage, LocalStorage)
    placer.storage._unnamed = False  # as after an open(O_TMPFILE) the system refused
    final = paths.data / "a/original.png"
    seen = _watched_writes(monkeypatch, final, lambda: placer.place_bytes(
        BODY, placed("a/original.png"), None, "http://h/x"))
    journal.close()
    body_writes = [t for _, t in seen if Path(t) != paths.journal.resolve()]
    assert body_writes and all(Path(t).parent == paths.partial.resolve() for t in body_writes)
    assert final.read_bytes() == BODY
    assert [p.path for p in journal.replay()] == ["a/original.png"]


def test_a_small_body_replacing_a_file_is_written_beside_then_renamed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths, journal, placer = make(tmp_path)
    final = paths.data / "a/b/original.png"
    final.parent.mkdir(parents=True)
    final.write_bytes(b"the old version")
    previous = hashlib.sha256(b"the old version").hexdigest()
    seen = _watched_writes(monkeypatch, final, lambda: placer.place_bytes(
        BODY, placed("a/b/original.png"), previous, "http://h/x"))
    journal.close()
    body_writes = [t for _, t in seen if Path(t) != paths.journal.resolve()]
    assert len(body_writes) == len(BODY) // 4096
    assert all(Path(target).parent == paths.partial.resolve() for target in body_writes)
    assert final.read_bytes() == BODY
    assert [p.read_bytes() for p in paths.history.rglob("*.png")] == [b"the old version"]
    assert not list(paths.partial.iterdir())


@pytest.mark.parametrize("there", ["file", "symlink"])
def test_a_file_the_state_never_knew_is_kept_in_the_history_not_overwritten(
        tmp_path: Path, there: str) -> None:
    paths, journal, placer = make(tmp_path)
    final = paths.data / "a/original.png"
    final.parent.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere.png"
    elsewhere.write_bytes(b"not the archive's")
    if there == "file":
        final.write_bytes(b"untracked bytes")
    else:
        final.symlink_to(elsewhere)
    placer.place_bytes(BODY, placed("a/original.png"), None, "http://h/x")
    journal.close()
    assert not final.is_symlink() and final.read_bytes() == BODY
    assert elsewhere.read_bytes() == b"not the archive's"  # a symlink is never written through
    kept = [p.read_bytes() for p in paths.history.rglob("*.png")]
    assert kept == ([b"untracked bytes"] if there == "file" else [])  # a link is no payload
    assert [p.path for p in journal.replay()] == ["a/original.png"]  # journaled once


def test_a_failed_small_write_leaves_nothing_behind(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    paths, journal, placer = make(tmp_path)
    calls = 0
    real_write = os.write

    def disk_fills(fd: int, data: bytes | memoryview) -> int:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data[:len(data) // 2])

    monkeypatch.setattr(os, "write", disk_fills)
    with pytest.raises(OSError, match="No space"):
        placer.place_bytes(BODY, placed("a/original.png"), None, "http://h/x")
    monkeypatch.undo()
    journal.close()
    assert not (paths.data / "a/original.png").exists()
    assert not list(paths.partial.iterdir()), "a half-written body was left in partial/"
    assert placer.storage.takes_new, "a full disk is no reason to stop writing unnamed files"
    assert not list(journal.replay())


def test_a_finished_file_is_renamed_not_copied(tmp_path: Path) -> None:
    paths, journal, placer = make(tmp_path)
    source = paths.partial / "x.part"
    source.write_bytes(BODY)
    inode = source.stat().st_ino
    placer.place_file(source, placed("c/original.png"), None, "http://h/x")
    journal.close()
    final = paths.data / "c/original.png"
    assert final.stat().st_ino == inode  # the same file, moved in one step
    assert not source.exists()
    assert final.read_bytes() == BODY
