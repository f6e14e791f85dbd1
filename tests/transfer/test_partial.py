"""A partial file names the version it holds the start of: as an extended attribute where the
file system keeps them, else (no support, or a name too long for one) in a sidecar file. A
later run reads either back; placing the file drops the name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assetvault.transfer.partial import XATTR, Partial
from assetvault.transfer.resume import Held

HELD = Held('"v1"', "Wed, 02 Dec 2026 00:00:00 GMT", 3 << 20)


def labelled(folder: Path, shown: str) -> Partial:
    partial = Partial(str(folder), "abc", shown, held=HELD)
    fd = os.open(partial.path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        partial.label(fd)
    finally:
        os.close(fd)
    return partial


@pytest.mark.parametrize("shown", ["http://h/f.bin", "http://h/f.bin?pad=" + "a" * 70_000],
                         ids=["attribute", "too long for one: sidecar"])
def test_a_later_run_reads_the_name_back(tmp_path: Path, shown: str) -> None:
    first = labelled(tmp_path, shown)
    assert first.meta.exists() == (len(shown) > 60_000)  # a sidecar only past the limit
    later = Partial(str(tmp_path), "abc", shown)
    later.load()
    assert later.held == HELD
    assert later.touched
    another_url = Partial(str(tmp_path), "abc", "http://h/other.bin")
    another_url.load()
    assert another_url.held is None  # never resumed as another URL's bytes


def test_the_name_goes_before_the_file_is_placed(tmp_path: Path) -> None:
    partial = labelled(tmp_path, "http://h/f.bin")
    try:
        assert XATTR in os.listxattr(partial.path)
    except OSError:
        pytest.skip("this file system keeps no user attributes")
    partial.unname()
    assert XATTR not in os.listxattr(partial.path)
    assert not partial.meta.exists()


def test_without_attributes_the_name_is_a_sidecar(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A platform without extended attributes (macOS has no os.setxattr) writes and reads the
    sidecar file instead."""
    import assetvault.transfer.partial as module

    monkeypatch.setattr(module, "_XATTRS", False)
    partial = labelled(tmp_path, "http://h/f.bin")
    assert partial.meta.is_file()
    later = Partial(str(tmp_path), "abc", "http://h/f.bin")
    later.load()
    assert later.held == HELD
    partial.unname()
    assert not partial.meta.exists()
