"""A Pillow image scaled to fit the preview size and written as PNG."""

from __future__ import annotations

import io

from PIL import Image

MAX_SIDE = 480  # pixels, the longer side of every preview


def png_of(im: Image.Image) -> bytes:
    """``im`` scaled down (never up) to :data:`MAX_SIDE`, in RGB or RGBA, as PNG bytes."""
    mode = "RGBA" if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info else "RGB"
    im = im.convert(mode)
    im.thumbnail((MAX_SIDE, MAX_SIDE))
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()
