"""The embroidery inside the sandbox's Tajima DST files: a badge stitched in three threads.

The badge is a satin ring, a five-pointed star filled with satin, and a satin banner across the
ring's foot, each in its own thread, so a reader sees two colour changes and a recognisable
shape. Units are DST's 0.1 mm with y pointing up; the design starts and ends at the ring's
centre, so whatever follows it (the padding's jumps) stays inside the badge.

The same badge exists at several satin densities: a small file still holds the whole badge,
sparsely sewn (236 records), and a large one a real 0.4 mm satin (1,786 records).
"""

from __future__ import annotations

import functools
import hashlib
import math
from typing import NamedTuple

__all__ = ["BANNER", "RING", "STAR", "WANDER", "Design", "Wander", "design_for", "header",
           "wander_at", "wander_block", "wander_of"]

STITCH, JUMP, COLOR = 0x03, 0x83, 0xC3
# One DST record moves at most 121 units per axis (balanced ternary digits 1, 3, 9, 27, 81).
_MAX_STEP = 121
# Satin spacing in 0.1 mm, densest first: 0.4 mm is a real satin; at 4 mm the shapes still read.
DENSITIES = (4, 5, 7, 10, 14, 20, 28, 40)

RING = (250, 300)  # inner and outer radius: a 6 cm badge, well inside any hoop
STAR = (5, 210, 85)  # points, tip radius, radius of the notches between points
BANNER = (-330, -300, 330, -230)  # x0, y0, x1, y1: across the ring's foot, below the star
# How far (per axis, 0.1 mm) the padding's jumps stray from the centre: 2.5 mm, inside the star.
WANDER = 25

Bounds = tuple[int, int, int, int]  # min x, min y, max x, max y
Move = tuple[int, float, float]  # record flag, then the absolute point it goes to


class Design(NamedTuple):
    """The badge's records (no END), how many, its colour changes and its extents."""

    records: bytes
    record_count: int
    colour_changes: int
    bounds: Bounds


class Wander(NamedTuple):
    """A file's padding path: two triangle waves, their frequencies and phases from the key."""

    freq_x: int
    freq_y: int
    phase_x: int
    phase_y: int


def _axis_table(bits: tuple[tuple[int, int, int, int], ...]) -> list[tuple[int, int, int]]:
    # bits[k] = (byte, bit) for +3**k, then (byte, bit) for -3**k, in DST's scattered layout.
    table = []
    for value in range(-_MAX_STEP, _MAX_STEP + 1):
        code = [0, 0, 0]
        rest = value
        for plus_byte, plus_bit, minus_byte, minus_bit in bits:
            digit = (rest + 1) % 3 - 1  # balanced ternary: -1, 0 or +1
            rest = (rest - digit) // 3
            if digit:
                byte, bit = (plus_byte, plus_bit) if digit > 0 else (minus_byte, minus_bit)
                code[byte] |= 1 << bit
        table.append((code[0], code[1], code[2]))
    return table


_X_CODES = _axis_table(((0, 0, 0, 1), (1, 0, 1, 1), (0, 2, 0, 3), (1, 2, 1, 3), (2, 2, 2, 3)))
_Y_CODES = _axis_table(((0, 7, 0, 6), (1, 7, 1, 6), (0, 5, 0, 4), (1, 5, 1, 4), (2, 5, 2, 4)))


def _record(flag: int, dx: int, dy: int) -> bytes:
    x0, x1, x2 = _X_CODES[dx + _MAX_STEP]
    y0, y1, y2 = _Y_CODES[dy + _MAX_STEP]
    return bytes((x0 | y0, x1 | y1, x2 | y2 | flag))


def _ring(spacing: int) -> list[Move]:
    inner, outer = RING
    count = round(math.pi * (inner + outer) / spacing)
    moves: list[Move] = []
    # Zigzag between the two circles; it starts and ends at the foot, where the banner goes.
    for k in range(count + 1):
        angle = 2 * math.pi * k / count - math.pi / 2
        moves.append((STITCH, outer * math.cos(angle), outer * math.sin(angle)))
        if k < count:
            angle += math.pi / count
            moves.append((STITCH, inner * math.cos(angle), inner * math.sin(angle)))
    return moves


def _star_corners() -> list[tuple[float, float]]:
    points, tip, notch = STAR
    corners = []
    for k in range(2 * points):
        radius, angle = (tip, notch)[k % 2], math.pi / 2 + math.pi * k / points
        corners.append((radius * math.cos(angle), radius * math.sin(angle)))
    return corners


def _run(start: tuple[float, float], stop: tuple[float, float], length: int) -> list[Move]:
    """A running stitch from ``start`` (where the needle is) to ``stop``, none over ``length``."""
    steps = max(1, math.ceil(math.dist(start, stop) / length))
    return [(STITCH, start[0] + (stop[0] - start[0]) * i / steps,
             start[1] + (stop[1] - start[1]) * i / steps) for i in range(1, steps + 1)]


def _star(spacing: int) -> list[Move]:
    points, tip, notch = STAR
    half = math.pi / points
    notch_at, notch_width = notch * math.cos(half), notch * math.sin(half)
    along = [m * spacing / 2 for m in range(int(2 * tip // spacing) + 1)] + [tip]
    moves: list[Move] = [(STITCH, 0.0, 0.0)]
    # Each point is a kite from the centre to its tip: a zigzag out, a running stitch back
    # down its axis (the ridge of a faceted star), so no stitch ever crosses the star.
    for k in range(points):
        axis = math.pi / 2 + 2 * math.pi * k / points
        ux, uy = math.cos(axis), math.sin(axis)
        for i, t in enumerate(along):
            if t < notch_at:
                width = notch_width * t / notch_at
            else:
                width = notch_width * (tip - t) / (tip - notch_at)
            side = width if i % 2 else -width
            moves.append((STITCH, t * ux - side * uy, t * uy + side * ux))
        moves += _run((tip * ux, tip * uy), (0.0, 0.0), 80)
    # Then the outline, on top, so the points stay sharp even at the sparsest spacing.
    corners = _star_corners()
    moves += _run((0.0, 0.0), corners[0], 80)
    for here, there in zip(corners, corners[1:] + corners[:1], strict=True):
        moves += _run(here, there, 80)
    return moves


def _banner(spacing: int) -> list[Move]:
    x0, y0, x1, y1 = BANNER
    steps = round(2 * (x1 - x0) / spacing)
    return [(STITCH, x0 + (x1 - x0) * i / steps, y1 if i % 2 else y0) for i in range(steps + 1)]


def _moves(spacing: int) -> list[Move]:
    moves: list[Move] = []
    for index, part in enumerate((_ring(spacing), _star(spacing), _banner(spacing))):
        if index:
            moves.append((COLOR, *moves[-1][1:]))
        moves.append((JUMP, *part[0][1:]))
        moves += part
    # Back to the centre: machines expect a design to end where it started.
    moves.append((JUMP, 0.0, 0.0))
    return moves


@functools.lru_cache(maxsize=len(DENSITIES))
def _design(spacing: int) -> Design:
    out = bytearray()
    x = y = 0
    low_x = low_y = high_x = high_y = 0
    colours = 0
    for flag, to_x, to_y in _moves(spacing):
        if flag == COLOR:
            out += _record(COLOR, 0, 0)
            colours += 1
            continue
        dx, dy = round(to_x) - x, round(to_y) - y
        # A move longer than one record can carry is split into equal records of the same kind.
        parts = max(1, -(-max(abs(dx), abs(dy)) // _MAX_STEP))
        start_x, start_y = x, y
        for part in range(1, parts + 1):
            nx, ny = start_x + dx * part // parts, start_y + dy * part // parts
            out += _record(flag, nx - x, ny - y)
            x, y = nx, ny
            low_x, low_y = min(low_x, x), min(low_y, y)
            high_x, high_y = max(high_x, x), max(high_y, y)
    return Design(bytes(out), len(out) // 3, colours, (low_x, low_y, high_x, high_y))


def design_for(budget: int) -> Design:
    """The densest badge of at most ``budget`` records, or the sparsest if none fits."""
    for spacing in DENSITIES:
        design = _design(spacing)
        if design.record_count <= budget:
            return design
    return _design(DENSITIES[-1])


def wander_of(key: bytes) -> Wander:
    """The padding path of the file with ``key``."""
    digest = hashlib.sha256(b"dst-wander" + key).digest()
    # Frequencies of 200-999 turns per block: steps of 1-5 units, never the same in x and y.
    freq_x = 200 + int.from_bytes(digest[:4], "big") % 800
    freq_y = 200 + (freq_x - 200 + 1 + int.from_bytes(digest[4:8], "big") % 799) % 800
    return Wander(freq_x, freq_y, int.from_bytes(digest[8:12], "big"),
                  int.from_bytes(digest[12:16], "big"))


def _triangle(phase: int, period: int) -> int:
    level = 4 * WANDER * (phase % period) // period
    return abs(level - 2 * WANDER) - WANDER


def wander_at(wander: Wander, index: int, period: int) -> tuple[int, int]:
    """Where the padding path is after ``index`` records, relative to where it began.

    The path has ``period`` records and is closed, so any ``period`` consecutive records
    (a rotated block) bring the needle back to where they started.
    """
    x = _triangle(wander.freq_x * index + wander.phase_x, period)
    y = _triangle(wander.freq_y * index + wander.phase_y, period)
    return x - _triangle(wander.phase_x, period), y - _triangle(wander.phase_y, period)


def _wave(freq: int, phase: int, period: int) -> list[int]:
    # _triangle over one whole period and one step more, inlined: this runs once per file.
    top, span = 2 * WANDER, 4 * WANDER
    return [abs(span * ((freq * i + phase) % period) // period - top) - WANDER
            for i in range(period + 1)]


def wander_block(wander: Wander, period: int) -> bytes:
    """One period of the padding path as jump records: the frame moves, the needle never sews."""
    xs = _wave(wander.freq_x, wander.phase_x, period)
    ys = _wave(wander.freq_y, wander.phase_y, period)
    jump = _jump_record
    return b"".join([jump(xs[i + 1] - xs[i], ys[i + 1] - ys[i]) for i in range(period)])


@functools.cache  # steps are at most 5 units: a few dozen entries
def _jump_record(dx: int, dy: int) -> bytes:
    return _record(JUMP, dx, dy)


def header(label: str, stitches: int, colour_changes: int, bounds: Bounds,
           end: tuple[int, int]) -> bytes:
    """The 512-byte DST header: label, record count, colour changes, extents, end point."""
    low_x, low_y, high_x, high_y = bounds
    fields = [f"LA:{label:<16}", f"ST:{stitches:>7}", f"CO:{colour_changes:>3}",
              f"+X:{high_x:>5}", f"-X:{-low_x:>5}", f"+Y:{high_y:>5}", f"-Y:{-low_y:>5}",
              f"AX:{'+' if end[0] >= 0 else '-'}{abs(end[0]):>5}",
              f"AY:{'+' if end[1] >= 0 else '-'}{abs(end[1]):>5}",
              "MX:+    0", "MY:+    0", "PD:******"]
    text = ("\r".join(fields) + "\r").encode("ascii") + b"\x1a"
    return text.ljust(512, b" ")
