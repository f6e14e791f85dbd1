"""The sandbox's DST files, read by a real embroidery library: a three-thread badge at any size.

The badge (``sandbox/designs.py``) is a ring, a five-pointed star and a banner across the ring's
foot. These tests redraw that description themselves, in pyembroidery's coordinates (0.1 mm,
y pointing down, the design's start at the origin), and hold the stitches to it.
"""

from __future__ import annotations

import io
import itertools
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from assetvault.sandbox import files
from assetvault.sandbox.formats import BLOCK, dst_size, padding_block

pyembroidery = pytest.importorskip("pyembroidery")  # the test extra; no stubs, hence Any

WHEN = datetime(2024, 1, 1, tzinfo=UTC)
CELL = 30  # 3 mm grid cells: coarse enough that a sparse satin still fills its shape
SMALLEST = 1223  # the sparsest badge: header, 236 records, END


def dst_file(size: int, path: str = "/blob/jobs/1/CCG1R1.DST") -> tuple[files.FileSpec, bytes]:
    spec = files.make_spec(1, path, 0, WHEN, size, size)
    return spec, files.read(spec, 0, spec.size)


def header_fields(data: bytes) -> dict[str, str]:
    text = data[:512].split(b"\x1a", 1)[0].decode("ascii")
    return {line[:2]: line[3:] for line in text.split("\r") if line}


def read(data: bytes) -> Any:
    return pyembroidery.read_dst(io.BytesIO(data))


def stitch_blocks(pattern: Any) -> list[list[tuple[float, float]]]:
    """The needle's points per thread, stitches only (jumps and trims sew nothing)."""
    blocks = []
    for block, _thread in pattern.get_as_colorblocks():
        blocks.append([(x, y) for x, y, command in block
                       if command & pyembroidery.COMMAND_MASK == pyembroidery.STITCH])
    return blocks


def in_ring(x: float, y: float) -> bool:
    return 245 <= math.hypot(x, y) <= 305


def in_star(x: float, y: float, slack: int = 5) -> bool:
    # Five points of radius 210, notches at 85, the top point straight up (negative y here);
    # ``slack`` forgives the outline stitches rounded onto whole 0.1 mm.
    radii = (210 + slack, 85 + slack)
    corners = [(radii[k % 2] * math.sin(math.pi * k / 5),
                -radii[k % 2] * math.cos(math.pi * k / 5)) for k in range(10)]
    inside = False
    for (ax, ay), (bx, by) in zip(corners, corners[1:] + corners[:1], strict=True):
        if (ay > y) != (by > y) and x < ax + (y - ay) * (bx - ax) / (by - ay):
            inside = not inside
    return inside or math.hypot(x, y) < 3


def in_banner(x: float, y: float) -> bool:
    return -332 <= x <= 332 and 228 <= y <= 302


def covered_cells(points: list[tuple[float, float]]) -> set[tuple[int, int]]:
    """The grid cells the thread passes over, sampling each stitch every 5 units."""
    cells = set()
    for (ax, ay), (bx, by) in itertools.pairwise(points):
        steps = max(1, int(math.dist((ax, ay), (bx, by)) // 5))
        for i in range(steps + 1):
            x, y = ax + (bx - ax) * i / steps, ay + (by - ay) * i / steps
            cells.add((math.floor(x / CELL), math.floor(y / CELL)))
    return cells


def logo_cells(offsets: tuple[float, ...]) -> set[tuple[int, int]]:
    """The cells where any of the sample points (``offsets`` across a cell) lies in the logo."""
    cells = set()
    for cx in range(-12, 12):
        for cy in range(-11, 11):
            for ox in offsets:
                for oy in offsets:
                    x, y = (cx + ox) * CELL, (cy + oy) * CELL
                    if in_ring(x, y) or in_star(x, y, slack=0) or in_banner(x, y):
                        cells.add((cx, cy))
    return cells


@pytest.mark.parametrize("size", [1, 515, 1_200, 1_300, 2_000, 5_000, 60_000, 1_500_000])
def test_dst_is_a_three_thread_badge_at_any_size(size: int) -> None:
    spec, data = dst_file(size)
    assert len(data) == spec.size == max(SMALLEST, dst_size(size, size))
    fields = header_fields(data)
    assert fields["LA"].strip() == "AV" + spec.key.hex()[:8].upper()
    assert int(fields["ST"]) == (len(data) - 512) // 3 and int(fields["CO"]) == 2
    pattern = read(data)
    assert pattern.count_color_changes() == 2
    # The header's extents hold every position the frame reaches; the badge is 6.6 x 6 cm,
    # inside DST's 5-digit fields and any hoop.
    low_x, low_y, high_x, high_y = pattern.bounds()
    extents = tuple(int(fields[name]) for name in ("+X", "-X", "+Y", "-Y"))
    assert extents == (high_x, -low_x, -low_y, high_y)  # DST's y points up, pyembroidery's down
    assert 600 <= high_x - low_x <= 700 and 550 <= high_y - low_y <= 650
    last_x, last_y, _ = pattern.stitches[-1]
    assert (int(fields["AX"].replace(" ", "")), int(fields["AY"].replace(" ", ""))) == (
        last_x, -last_y)
    ring, star, banner = stitch_blocks(pattern)
    for points, shape in ((ring, in_ring), (star, in_star), (banner, in_banner)):
        assert len(points) >= 30
        assert all(shape(x, y) for x, y in points), shape.__name__
    # Coarsely, on a 3 mm grid: the thread covers the cells whose centre is in the logo, and
    # touches no cell the logo does not touch (the gap between star and ring stays bare).
    sewn = covered_cells(ring) | covered_cells(star) | covered_cells(banner)
    centres = logo_cells((0.5,))
    assert len(sewn & centres) >= 0.95 * len(centres)
    assert sewn <= logo_cells((0.0, 0.25, 0.5, 0.75, 1.0))


def test_dst_padding_only_jumps_and_comes_back() -> None:
    spec, small = dst_file(60_000)
    prefix = len(spec.layout.prefix)
    flags = small[prefix:-3][2::3]
    assert all(flag & 0xC3 == 0x83 for flag in flags)  # 10xxxx11: a jump, never a stitch
    # A block deep inside a 256 MiB file, read on its own: a closed loop of small jumps.
    big = files.make_spec(1, "/blob/jobs/1/CCG1R1.DST", 0, WHEN, 1 << 28, 1 << 28)
    start = len(big.layout.prefix) + 3_000 * BLOCK
    block = files.read(big, start, start + BLOCK)
    assert block == padding_block("dst", big.key, 3_000)
    pattern = read(b" " * 512 + block + b"\x00\x00\xf3")
    commands = {c & pyembroidery.COMMAND_MASK for *_, c in pattern.stitches[:-1]}
    assert commands <= {pyembroidery.JUMP, pyembroidery.TRIM}
    positions = pattern.stitches
    assert max(max(abs(x), abs(y)) for x, y, _ in positions) <= 50
    assert tuple(positions[-1][:2]) == (0, 0)


def test_dst_is_deterministic_and_the_design_the_same_for_every_file() -> None:
    spec, data = dst_file(20_000)
    assert dst_file(20_000)[1] == data
    other, other_data = dst_file(20_000, "/blob/jobs/2/CCG2R1.DST")
    assert other_data != data
    # Same badge, same density: only the label, the end point and the padding differ.
    assert spec.layout.prefix[512:] == other.layout.prefix[512:]
