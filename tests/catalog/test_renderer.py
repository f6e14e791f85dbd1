"""A renderer that crashes or hangs on one file costs that file its preview, nothing more."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from assetvault.catalog import build_catalog, renderer
from assetvault.catalog.previews import render_task
from assetvault.storage import LocalStorage

from .kit import make_archive, png

CRASH, HANG = b"crash-the-renderer", b"hang-the-renderer"


def _hostile_task(task: tuple[str, str, str, str]) -> tuple[str, bytes | None, str]:
    """In the worker: die at once, or spin until an alarm's default action ends the process
    (as previews.SECONDS does for a renderer stuck in native code), or render."""
    with open(task[3], "rb") as f:
        data = f.read()
    if data.startswith(CRASH):
        os._exit(3)
    if data.startswith(HANG):
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(1)
        while True:
            pass
    return render_task(task)


def test_a_crash_and_a_hang_get_placeholders_and_the_rest_previews(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(renderer, "render_task", _hostile_task)
    files = {f"urls/job/{n}.png": png((n * 40, 90, 90)) for n in range(4)}
    files |= {"urls/job/crash.png": CRASH, "urls/job/hang.png": HANG}
    root = make_archive(tmp_path / "archive", files, {})
    result = build_catalog(LocalStorage(root), root / ".assetvault/state.sqlite", workers=2)
    assert result.records == 6 and result.rendered == 6
    reasons = [p.read_text() for p in (root / "catalog/previews").rglob("*.txt")]
    assert reasons == [renderer.CRASHED] * 2
    assert len(list((root / "catalog/previews").rglob("*.png"))) == 4


def test_a_payload_file_replaced_by_a_link_out_is_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside.png"
    outside.write_bytes(png((1, 2, 3)))
    root = make_archive(tmp_path / "archive", {"urls/job/a.png": png()}, {})
    (root / "data/urls/job/a.png").unlink()
    (root / "data/urls/job/a.png").symlink_to(outside)
    build_catalog(LocalStorage(root), root / ".assetvault/state.sqlite", workers=1)
    assert not list((root / "catalog/previews").rglob("*.png"))
    assert [p.read_text() for p in (root / "catalog/previews").rglob("*.txt")] == [
        "the archived file is missing"]
