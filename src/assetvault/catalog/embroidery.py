"""Embroidery designs (DST, PES, JEF, EXP, VP3, ...) drawn as stitches in thread colours.

pyembroidery reads the stitches; they are drawn here as lines with Pillow at a bounded size.
A design's own extent can be enormous in pixels (a real DST here spans 12,717 x 9,350
units), so it is scaled to fit :data:`MAX_SIDE` instead of being rendered at its resolution.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, ImageDraw

from .shrink import MAX_SIDE, PreviewError, png_of

MAX_STITCHES = 2_000_000  # beyond this a design is not drawn (a hostile file)
# pyembroidery holds a stitch as a Python list (~100 bytes for 3 in a DST): a file this size is
# ~1.4 million stitches and ~150 MB in a worker; a real design is a few hundred KiB.
MAX_DESIGN_BYTES = 4 << 20
# For formats that carry no thread colours (DST): distinct, readable on white.
PALETTE = ((0x1F, 0x4E, 0x9A), (0xC0, 0x26, 0x26), (0xE0, 0xA0, 0x10), (0x2E, 0x8B, 0x57),
           (0x6A, 0x3D, 0x9A), (0x22, 0x22, 0x22), (0xD2, 0x69, 0x1E), (0x00, 0x8B, 0x8B))
_SUPERSAMPLE = 2  # drawn at twice the size, then scaled down: smoother lines


def _readers() -> dict[str, Any]:
    """pyembroidery's reader of each embroidery format, by extension."""
    import pyembroidery

    return {f["extension"]: f["reader"] for f in pyembroidery.supported_formats()
            if f.get("reader") is not None and f.get("category") == "embroidery"}


# ".dat" and ".gcode" name far more than embroidery: not read as designs.
EMBROIDERY = frozenset(_readers()) - {"dat", "gcode"}


def render_embroidery(fmt: str, data: bytes) -> bytes:
    """A PNG of the design's stitches; PreviewError when it has none."""
    import pyembroidery

    reader = _readers().get(fmt)
    if reader is None:
        raise PreviewError(f"no reader for {fmt.upper()} files")
    if len(data) > MAX_DESIGN_BYTES:
        raise PreviewError(f"an embroidery file over {MAX_DESIGN_BYTES >> 20} MiB: not drawn")
    pattern = pyembroidery.EmbPattern.read_embroidery(reader, io.BytesIO(data))
    if pattern is None or not pattern.stitches:
        raise PreviewError(f"a {fmt.upper()} file without stitches (truncated?)")
    if len(pattern.stitches) > MAX_STITCHES:
        raise PreviewError(f"more than {MAX_STITCHES:,} stitches: not drawn")
    # Drawn at twice the size for smooth lines; halved with a box filter (a fraction of the
    # cost of a Lanczos resize, and the same to the eye at this size).
    return png_of(_draw(pattern).reduce(_SUPERSAMPLE))


def _draw(pattern: Any) -> Image.Image:
    min_x, min_y, max_x, max_y = pattern.bounds()
    span = max(max_x - min_x, max_y - min_y, 1)
    side = MAX_SIDE * _SUPERSAMPLE
    scale = (side - 8) / span
    width = int((max_x - min_x) * scale) + 9
    height = int((max_y - min_y) * scale) + 9
    im = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(im)
    drawn = 0
    threads: dict[int, int] = {}  # a thread's first appearance: its place in the palette
    for block, thread in pattern.get_as_stitchblock():
        colour = _colour(pattern, thread, threads.setdefault(id(thread), len(threads)))
        points = [(4 + (x - min_x) * scale, 4 + (y - min_y) * scale) for x, y, *_ in block]
        if len(points) > 1:
            draw.line(points, fill=colour, width=_SUPERSAMPLE + 1, joint="curve")
            drawn += 1
    if drawn == 0:
        raise PreviewError("a design without a stitch to draw (truncated?)")
    return im


def _colour(pattern: Any, thread: Any, index: int) -> tuple[int, int, int]:
    """The thread's own colour where the file has one, else the palette's, by colour change."""
    if pattern.threadlist:
        value = int(thread.color) & 0xFFFFFF
        return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF
    return PALETTE[index % len(PALETTE)]
