"""Each renderer alone: bounded output for good files, a reason for bad ones."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from assetvault.catalog.previews import MAX_SIDE, PreviewError, kind_of, render, render_task

from .kit import bomb_png, dst, pdf, png


def _size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        return im.size


@pytest.mark.parametrize(("kind", "fmt", "data"), [
    ("image", "png", png(size=(2000, 500))),
    ("embroidery", "dst", dst()),
    ("pdf", "pdf", pdf()),
])
def test_good_files_render_within_the_bound(kind: str, fmt: str, data: bytes) -> None:
    width, height = _size(render(kind, fmt, data))
    assert max(width, height) <= MAX_SIDE
    assert min(width, height) > 0


def test_a_design_of_twelve_centimetres_is_drawn_at_preview_size_in_two_threads() -> None:
    with Image.open(io.BytesIO(render("embroidery", "dst", dst()))) as im:
        assert max(im.size) == MAX_SIDE
        pixels = list(im.convert("RGB").get_flattened_data())
    # a DST carries no colours: the palette's first two threads, blue then red
    blue = sum(1 for r, _, b in pixels if b > r + 60)
    red = sum(1 for r, _, b in pixels if r > b + 60)
    assert blue > 500 and red > 500


@pytest.mark.parametrize(("kind", "fmt", "data", "reason"), [
    ("image", "png", b"\x89PNG\r\n\x1a\nnot really a png", "cannot be read as PNG"),
    ("image", "png", bomb_png(), "decompression bomb"),
    ("embroidery", "dst", dst(40)[:512], "truncated"),
    ("pdf", "pdf", b"%PDF-1.7\n1 0 obj <</Type /Catalog>> trailer <<>>", "cannot be read as PDF"),
    ("pdf", "pdf", b"", "cannot be read as PDF"),
    ("embroidery", "dst", dst()[:512] + b"\x00\x00\x03" * (2 << 20), "over 4 MiB"),
])
def test_bad_files_give_a_reason(kind: str, fmt: str, data: bytes, reason: str,
                                 tmp_path: Path) -> None:
    with pytest.raises(PreviewError, match=reason):
        render(kind, fmt, data)
    (tmp_path / "file").write_bytes(data)
    sha, preview, why = render_task(("ab" * 32, kind, fmt, str(tmp_path / "file")))
    assert (sha, preview) == ("ab" * 32, None) and reason in why


def test_only_known_formats_are_previewed() -> None:
    assert kind_of("dst") == "embroidery" and kind_of("jpeg") == "image"
    assert kind_of("pdf") == "pdf" and kind_of("emb") is None and kind_of("json") is None


def test_a_file_gone_from_under_the_worker_gets_a_reason(tmp_path: Path) -> None:
    _, preview, why = render_task(("cd" * 32, "image", "png", str(tmp_path / "gone.png")))
    assert preview is None and "cannot be read" in why
