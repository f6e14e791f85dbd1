"""Rendering one preview: a file's bytes in, a small PNG out, or a reason it has none.

Pure functions, run in worker processes (see :mod:`.renderer`). Every renderer bounds its
output to :data:`MAX_SIDE` pixels and refuses what would cost unbounded memory: Pillow's
decompression-bomb guard is on (its warning is an error here), a PDF page is rendered at the
scale that fits, embroidery is drawn as lines rather than at its own resolution.
"""

from __future__ import annotations

import io
import os
import signal
import warnings

from PIL import Image

from .embroidery import EMBROIDERY, render_embroidery
from .shrink import MAX_SIDE, PreviewError, png_of

MAX_PIXELS = 64_000_000  # a 8,000 x 8,000 image; beyond, Pillow's guard refuses it
MAX_BYTES = 256 << 20  # a file larger than this is not read for a preview
SECONDS = 30  # a renderer still busy after this is killed (a hostile file)
IMAGES = frozenset({"png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff", "ico"})
PDF = frozenset({"pdf"})

__all__ = ["MAX_SIDE", "PreviewError", "kind_of", "render", "render_task"]


def kind_of(fmt: str) -> str | None:
    """Which renderer a format gets; None: a format the catalog does not preview."""
    if fmt in IMAGES:
        return "image"
    if fmt in PDF:
        return "pdf"
    if fmt in EMBROIDERY:
        return "embroidery"
    return None


def render(kind: str, fmt: str, data: bytes) -> bytes:
    """A PNG preview of ``data``; PreviewError with the reason when there can be none."""
    try:
        if kind == "image":
            return _image(data)
        if kind == "pdf":
            return _pdf(data)
        return render_embroidery(fmt, data)
    except PreviewError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PreviewError("too many pixels to preview safely (a decompression bomb?)") from None
    except MemoryError:
        raise PreviewError("too large to preview") from None
    except Exception as exc:  # a hostile file may break a parser anywhere: one file, one reason
        raise PreviewError(f"cannot be read as {fmt.upper()} ({type(exc).__name__})") from None


def render_task(task: tuple[str, str, str, str]) -> tuple[str, bytes | None, str]:
    """Worker entry: (sha256, kind, format, file) → (sha256, PNG or None, reason).

    The alarm's default action ends the process: a renderer stuck inside native code (a
    hostile PDF) cannot be interrupted any other way; the pool notices and the file is
    retried alone, then given a placeholder.
    """
    sha, kind, fmt, source = task
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(SECONDS)
    try:
        with open(source, "rb") as f:
            if os.fstat(f.fileno()).st_size > MAX_BYTES:  # grown since it was chosen
                raise PreviewError(f"too large to preview (over {MAX_BYTES >> 20} MiB)")
            data = f.read()  # sized by one fstat; read(n) would allocate n bytes first
        return sha, render(kind, fmt, data), ""
    except OSError as exc:
        return sha, None, f"the archived file cannot be read ({type(exc).__name__})"
    except PreviewError as exc:
        return sha, None, str(exc)
    finally:
        signal.alarm(0)


def _image(data: bytes) -> bytes:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at a fraction of the size
            im.load()
            return png_of(im)


def _pdf(data: bytes) -> bytes:
    import pypdfium2

    pdf = pypdfium2.PdfDocument(data)
    try:
        if len(pdf) == 0:
            raise PreviewError("a PDF without pages")
        page = pdf[0]
        width, height = page.get_size()
        if width <= 0 or height <= 0:
            raise PreviewError("a PDF whose first page has no size")
        scale = min(MAX_SIDE / max(width, height), 4.0)
        bitmap = page.render(scale=scale)
        return png_of(bitmap.to_pil())
    finally:
        pdf.close()
