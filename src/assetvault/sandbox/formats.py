"""Tiny real files (PNG, PDF, Tajima DST, JPEG) stretched to any size.

A file is ``prefix + padding + suffix``. Prefix and suffix are small and built whole; the padding
is made of fixed-size blocks that are each computable on their own, so any byte range of a huge
file costs O(range). Where the padding sits keeps each format valid: after IEND for PNG, after
EOI for JPEG, inside a comment before the xref for PDF. A DST file is a stitched badge
(``designs``) followed by jump records that wander around its centre and sew nothing.
"""

from __future__ import annotations

import functools
import hashlib
import struct
import zlib
from typing import NamedTuple

from . import designs

__all__ = ["BLOCK", "Layout", "dst_size", "kind_of", "layout", "padding_block"]

# A multiple of 3, so DST stitch records never straddle two blocks.
BLOCK = 65_535
_RECORDS_PER_BLOCK = BLOCK // 3
# Odd and coprime to the record count: each block index gets a distinct rotation.
_STRIDE = 7_919

_KINDS = {
    ".png": "png", ".pdf": "pdf", ".dst": "dst", ".jpg": "jpg", ".jpeg": "jpg",
}
_NO_NEWLINES = bytes.maketrans(b"\r\n", b"  ")
_DST_END = b"\x00\x00\xf3"


class Layout(NamedTuple):
    """The three parts of a generated file; ``padding`` is a length."""

    kind: str
    prefix: bytes
    padding: int
    suffix: bytes

    @property
    def size(self) -> int:
        return len(self.prefix) + self.padding + len(self.suffix)


def kind_of(path: str) -> str:
    """The format generated for a URL path, from its extension (case-insensitive)."""
    name = path.rsplit("/", 1)[-1].lower()
    dot = name.rfind(".")
    # Uploads without an extension are images: the content type is then the only hint.
    return _KINDS.get(name[dot:], "bin") if dot >= 0 else "png"


def dst_size(size: int, size_min: int) -> int:
    """``size`` moved onto a whole number of stitch records, staying at or above ``size_min``."""
    fixed = 512 + len(_DST_END)
    if size <= fixed:
        return size
    size -= (size - fixed) % 3
    return size + 3 if size < size_min else size


def layout(kind: str, size: int, key: bytes) -> Layout:
    """A valid file of ``kind`` of ``size`` bytes, or the smallest valid one if that is larger."""
    if kind == "pdf":
        return _pdf_layout(size)
    if kind == "dst":
        return _dst_layout(size, key)
    prefix = {"png": _png, "jpg": _jpeg}.get(kind, _bin)(key)
    return Layout(kind, prefix, max(0, size - len(prefix)), b"")


def padding_block(kind: str, key: bytes, index: int) -> bytes:
    """Block ``index`` of the padding: a rotation of one random block per file."""
    base = _base_block(kind, key)
    shift = 3 * ((index * _STRIDE) % _RECORDS_PER_BLOCK)
    return base[shift:] + base[:shift]


@functools.lru_cache(maxsize=64)
def _base_block(kind: str, key: bytes) -> bytes:
    raw = hashlib.shake_128(key).digest(BLOCK)
    if kind == "pdf":
        return raw.translate(_NO_NEWLINES)
    if kind == "dst":
        # One closed loop of jumps: each rotated block returns the frame to where it began.
        return designs.wander_block(designs.wander_of(key), _RECORDS_PER_BLOCK)
    return raw


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _png(key: bytes) -> bytes:
    width = height = 4
    pixel = key[:3]
    rows = b"".join(b"\x00" + pixel * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(rows))
            + _chunk(b"IEND", b""))


def _segment(marker: int, body: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(body) + 2) + body


# An 8x8 grey baseline JPEG: one-symbol Huffman tables, so the whole scan is two 0-bits.
_JPEG = (
    b"\xff\xd8"
    + _segment(0xDB, b"\x00" + b"\x01" * 64)
    + _segment(0xC0, b"\x08\x00\x08\x00\x08\x01\x01\x11\x00")
    + _segment(0xC4, b"\x00\x01" + b"\x00" * 15 + b"\x00")
    + _segment(0xC4, b"\x10\x01" + b"\x00" * 15 + b"\x00")
    + _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    + b"\x3f\xff\xd9"
)


def _jpeg(key: bytes) -> bytes:
    return _JPEG


def _bin(key: bytes) -> bytes:
    return b""


_PDF_OBJECTS = (
    b"<< /Type /Catalog /Pages 2 0 R >>",
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents 4 0 R /Resources << >> >>",
)
_PDF_DRAWING = b"0.8 0.2 0.1 rg 10 10 180 80 re f"


def _pdf_head() -> tuple[bytes, list[int]]:
    head = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    stream = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(_PDF_DRAWING), _PDF_DRAWING)
    for number, body in enumerate((*_PDF_OBJECTS, stream), start=1):
        offsets.append(len(head))
        head += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    head += b"%"
    return bytes(head), offsets


_PDF_HEAD, _PDF_OFFSETS = _pdf_head()


def _pdf_tail(xref_at: int) -> bytes:
    entries = b"".join(b"%010d 00000 n \n" % offset for offset in _PDF_OFFSETS)
    count = len(_PDF_OFFSETS) + 1
    return (b"\nxref\n0 %d\n0000000000 65535 f \n%s" % (count, entries)
            + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (count, xref_at))


def _pdf_layout(size: int) -> Layout:
    # The tail's length depends on the digits of the xref offset, which depends on the padding.
    # Right at a power of ten the two can chase each other (999 <-> 1000): one byte more
    # settles it.
    for wanted in (size, size + 1, size + 2):
        for digits in range(1, 20):
            padding = max(0, wanted - len(_PDF_HEAD) - len(_pdf_tail(10 ** (digits - 1))))
            xref_at = len(_PDF_HEAD) + padding + 1
            if len(str(xref_at)) == digits or padding == 0:
                return Layout("pdf", _PDF_HEAD, padding, _pdf_tail(xref_at))
    raise ValueError(f"cannot lay out a PDF of {size} bytes")


def _dst_end(key: bytes, records: int) -> tuple[int, int]:
    """Where ``records`` padding records leave the frame: whole blocks come back, the last not."""
    whole, rest = divmod(records, _RECORDS_PER_BLOCK)
    shift = (whole * _STRIDE) % _RECORDS_PER_BLOCK  # the last block's rotation
    wander = designs.wander_of(key)
    start = designs.wander_at(wander, shift, _RECORDS_PER_BLOCK)
    stop = designs.wander_at(wander, shift + rest, _RECORDS_PER_BLOCK)
    return stop[0] - start[0], stop[1] - start[1]


def _dst_layout(size: int, key: bytes) -> Layout:
    budget = max(0, size - 512 - len(_DST_END)) // 3
    design = designs.design_for(budget)
    records = max(0, budget - design.record_count)
    low_x, low_y, high_x, high_y = design.bounds
    if records:
        # The padding strays at most twice WANDER from the centre, where the design ends.
        reach = 2 * designs.WANDER
        low_x, low_y = min(low_x, -reach), min(low_y, -reach)
        high_x, high_y = max(high_x, reach), max(high_y, reach)
    label = "AV" + key.hex()[:8].upper()
    head = designs.header(label, design.record_count + records + 1, design.colour_changes,
                          (low_x, low_y, high_x, high_y), _dst_end(key, records))
    return Layout("dst", head + design.records, 3 * records, _DST_END)
