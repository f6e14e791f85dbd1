"""A Pillow image scaled to fit the preview size and written as PNG; why a file has none."""

from __future__ import annotations

import io

from PIL import Image

MAX_SIDE = 480  # pixels, the longer side of every preview


class PreviewError(Exception):
    """A file that has no preview; the message is the reason shown beside its placeholder."""


def png_of(im: Image.Image) -> bytes:
    """``im`` scaled down (never up) to :data:`MAX_SIDE`, in RGB or RGBA, as PNG bytes."""
    mode = "RGBA" if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info else "RGB"
    im = im.convert(mode)
    im.thumbnail((MAX_SIDE, MAX_SIDE))
    out = io.BytesIO()
    im.save(out, "PNG", compress_level=1)  # 3-4x faster than the default 6; previews are small
    return out.getvalue()
