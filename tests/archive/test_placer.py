"""placer: bytes reach their final path under data/ only whole, by a rename from beside it.

The streamed path is pinned end to end in test_crash (a server holds a body half-way); a
small body is read whole and written here in one step, too fast to catch from outside, so the
writes themselves are watched.
"""

from __future__ import annotations

import errno
import hashlib
import os
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


def test_small_body_is_written_beside_then_renamed(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    paths, journal, placer = make(tmp_path)
    final = paths.data / "a/b/original.png"
    seen: list[tuple[bool, str]] = []
    real_write = os.write

    def watched(fd: int, data: bytes | memoryview) -> int:
        seen.append((final.exists(), os.readlink(f"/proc/self/fd/{fd}")))
        return real_write(fd, data[:4096])  # short writes: the loop must finish the body

    monkeypatch.setattr(os, "write", watched)
    placer.place_bytes(BODY, placed("a/b/original.png"), None, "http://h/x")
    monkeypatch.undo()
    journal.close()
    body_writes = [(visible, t) for visible, t in seen if Path(t) != paths.journal.resolve()]
    assert len(body_writes) == len(BODY) // 4096
    assert not any(visible for visible, _ in body_writes), "the final path was being written"
    assert all(Path(target).parent == paths.partial.resolve() for _, target in body_writes)
    assert final.read_bytes() == BODY
    assert not list(paths.partial.iterdir())
    assert [p.path for p in journal.replay()] == ["a/b/original.png"]


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
