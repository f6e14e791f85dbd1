"""verify_storage: the bag check read through a Storage (LocalStorage here, on real files)
gives what verify_bag gives for a folder, streams the manifest, and in fast mode compares the
digests a store keeps beside each object."""

from __future__ import annotations

import hashlib
import itertools
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from assetvault.bag.verify import (
    MANIFEST,
    split_lines,
    verify_bag,
    verify_storage,
)
from assetvault.bag.write import PayloadFile, write_bag
from assetvault.storage import LocalStorage
from assetvault.storage.base import Stored

from . import bags
from .bags import AGENT, LOC_SAFE, PERCENT, make_payload

SIZES = {f"data/{name}": len(body) for name, body in (LOC_SAFE | PERCENT).items()}
DIGESTS = {f"data/{n}": hashlib.sha256(b).hexdigest() for n, b in (LOC_SAFE | PERCENT).items()}


def _append(root: Path, name: str, text: str) -> None:
    with open(root / name, "a", encoding="utf-8", newline="") as f:
        f.write(text)


def _flip(root: Path) -> None:
    target = root / "data" / "deep/a/b/c/d.bin"
    body = bytearray(target.read_bytes())
    body[100] ^= 0x01
    target.write_bytes(body)


def _all_at_once(root: Path) -> None:
    (root / "data" / "plain.txt").write_bytes(b"PLAIN")
    (root / "data" / "empty.dat").unlink()
    (root / "data" / "new.txt").write_bytes(b"new")


def _then(change: Callable[[Path, str], None], value: str) -> Callable[[Path], None]:
    return lambda root: change(root, value)


def _crlf(root: Path) -> None:
    (root / "tagmanifest-sha256.txt").unlink()
    manifest = root / MANIFEST
    manifest.write_bytes(manifest.read_bytes().replace(b"\n", b"\r\n"))


# (what is done to the bag, verify's keyword arguments, whether the bag is still valid)
SCENARIOS: dict[str, tuple[Callable[[Path], None], dict[str, Any], bool]] = {
    "untouched": (lambda root: None, {}, True),
    "flipped byte": (_flip, {"workers": 4}, False),
    "missing file": (lambda root: (root / "data" / "100%.txt").unlink(), {}, False),
    "missing percent-encoded name": (lambda r: (r / "data" / "a%0Ab.txt").unlink(), {}, False),
    "missing name with LF": (lambda r: (r / "data" / "line\nbreak.txt").unlink(), {}, False),
    "extra file": (lambda r: (r / "data" / ".hidden" / "stray").write_bytes(b"x"), {}, False),
    "all at once": (_all_at_once, {}, False),
    "fast, sizes, truncated": (
        lambda r: (r / "data" / "line\nbreak.txt").write_bytes(b"newline"),
        {"fast": True, "sizes": SIZES.get}, False),
    "fast does not hash": (lambda r: (r / "data" / "plain.txt").write_bytes(b"PLAIN"),
                           {"fast": True}, True),
    "fast, no sizes, oxum": (lambda r: (r / "data" / "plain.txt").write_bytes(b"pla"),
                             {"fast": True}, False),
    "no bagit.txt": (lambda root: (root / "bagit.txt").unlink(), {}, False),
    "bagit.txt with BOM": (lambda r: (r / "bagit.txt").write_bytes(
        b"\xef\xbb\xbfBagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"), {}, False),
    "bad tagmanifest": (lambda r: _append(r, "bag-info.txt", "Contact-Name: someone\n"), {},
                        False),
    "no tagmanifest": (lambda r: (r / "tagmanifest-sha256.txt").unlink(), {}, True),
    "tagmanifest names gone and up": (lambda r: _append(
        r, "tagmanifest-sha256.txt", "0" * 64 + "  gone.txt\n" + "0" * 64 + "  ../up.txt\n"),
        {}, False),
    "no manifest": (lambda root: (root / MANIFEST).unlink(), {}, False),
    "manifest with CRLF": (_crlf, {}, True),
    "listed twice": (_then(bags.add_manifest_line, "0" * 64 + "  data/plain.txt"), {}, False),
    **{f"bad oxum {v!r}": (_then(bags.set_oxum, v), {}, False) for v in [*bags.BAD_OXUMS, "1.1"]},
    **{f"bad manifest line {i}": (_then(bags.add_manifest_line, line), {}, False)
       for i, line in enumerate(bags.BAD_MANIFEST_LINES)},
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_storage_agrees_with_folder(bag: Path, scenario: str) -> None:
    change, kwargs, valid = SCENARIOS[scenario]
    change(bag)
    by_folder = verify_bag(bag, **kwargs)
    by_storage = verify_storage(LocalStorage(bag), **kwargs)
    assert by_storage == by_folder
    assert by_storage.ok is valid, by_storage


def test_storage_reports_every_problem_at_once(bag: Path) -> None:
    _all_at_once(bag)
    result = verify_storage(LocalStorage(bag), workers=3)
    assert (result.mismatched, result.missing, result.extra) == (
        ["data/plain.txt"], ["data/empty.dat"], ["data/new.txt"])
    assert result.checked == len(SIZES) - 1


def test_storage_with_unicode_normalisation_differences(tmp_path: Path) -> None:
    name = unicodedata.normalize("NFC", "café.txt")
    files = make_payload(tmp_path, {unicodedata.normalize("NFD", name): b"coffee"})
    nfc = [PayloadFile(PurePosixPath(name), f.sha256, f.size) for f in files]
    write_bag(LocalStorage(tmp_path), nfc, agent=AGENT)
    result = verify_storage(LocalStorage(tmp_path))
    assert result == verify_bag(tmp_path)
    assert result.ok and result.checked == 1


def test_storage_not_a_bag(tmp_path: Path) -> None:
    # No folders in a store: an empty listing is an empty payload, not a missing data/.
    result = verify_storage(LocalStorage(tmp_path))
    assert result.problems == [
        f"bagit.txt is missing: {tmp_path} is not a bag",
        "bag-info.txt is missing (it must carry Payload-Oxum)",
        "manifest-sha256.txt is missing",
    ]


# -- fast mode: digests stored beside each object ----------------------------------------


def test_fast_mode_compares_stored_digests(bag: Path) -> None:
    (bag / "data" / "plain.txt").write_bytes(b"PLAIN")  # same size: only a digest tells
    stored = dict(DIGESTS)
    stored["data/plain.txt"] = hashlib.sha256(b"PLAIN").hexdigest()
    stored["data/empty.dat"] = stored["data/empty.dat"].upper()  # any hex case
    del stored["data/100%.txt"]  # no metadata: unknown, not checked
    asked: list[str] = []

    def digests(key: str) -> str | None:
        asked.append(key)
        return stored.get(key)

    result = verify_storage(LocalStorage(bag), fast=True, sizes=SIZES.get, digests=digests)
    assert result.mismatched == ["data/plain.txt"]
    assert (result.missing, result.extra, result.problems) == ([], [], [])
    assert sorted(asked) == sorted(SIZES)
    assert verify_storage(LocalStorage(bag), fast=True, sizes=SIZES.get).ok


def test_fast_mode_size_mismatch_skips_the_digest(bag: Path) -> None:
    (bag / "data" / "plain.txt").write_bytes(b"pla")
    asked: list[str] = []
    result = verify_storage(LocalStorage(bag), fast=True, sizes=SIZES.get,
                            digests=lambda key: asked.append(key) or DIGESTS[key])
    assert result.mismatched == ["data/plain.txt"]
    assert "data/plain.txt" not in asked and len(asked) == len(SIZES) - 1


class _Refused(Exception):
    """Not an OSError, like the errors an object-store client raises."""


def test_an_object_that_cannot_be_read_is_its_problem_alone(bag: Path) -> None:
    class Flaky(LocalStorage):
        def blocks(self, key: str) -> Iterator[bytes]:
            if key == "data/plain.txt":
                raise _Refused("403 Forbidden")
            return super().blocks(key)

    def digests(key: str) -> str:
        if key == "data/empty.dat":
            raise _Refused("503 SlowDown")
        return DIGESTS[key]

    full = verify_storage(Flaky(bag))
    assert full.problems == ["data/plain.txt: cannot read: _Refused: 403 Forbidden"]
    assert (full.missing, full.extra, full.mismatched, full.checked) == ([], [], [], len(SIZES))
    fast = verify_storage(Flaky(bag), fast=True, digests=digests)
    assert fast.problems == ["data/empty.dat: cannot read: _Refused: 503 SlowDown"]


def test_folder_markers_are_not_payload(bag: Path) -> None:
    class WithMarker(LocalStorage):
        def list(self, prefix: str) -> Iterator[Stored]:
            yield Stored("data/", 0)
            yield from super().list(prefix)

    assert verify_storage(WithMarker(bag)).ok


# -- the manifest streams ------------------------------------------------------------------


def test_large_manifest_is_parsed_as_it_streams(tmp_path: Path) -> None:
    """200,000 entries (17 MB of manifest): never read whole, each block's lines checked
    before the next block is asked for. The payload is a listing only (fast mode)."""
    count, sized = 200_000, [0]
    names = [f"data/d/{i // 1000:03d}/{i:08d}.bin" for i in range(count)]
    files = (PayloadFile(PurePosixPath(n[5:]), f"{i:064x}", i) for i, n in enumerate(names))
    write_bag(LocalStorage(tmp_path), files, agent=AGENT)
    checked_by_block: list[list[int]] = []  # a list per pass (tag manifest digest, parse)

    class Streamed(LocalStorage):
        def read(self, key: str) -> bytes:
            assert key != MANIFEST, "the manifest was read whole"
            return super().read(key)

        def blocks(self, key: str) -> Iterator[bytes]:
            if key != MANIFEST:
                yield from super().blocks(key)
                return
            checked_by_block.append(seen := [])
            for block in super().blocks(key):
                for start in range(0, len(block), 1 << 16):  # 64 KiB, as a store might
                    seen.append(sized[0])
                    yield block[start:start + (1 << 16)]

        def list(self, prefix: str) -> Iterator[Stored]:
            assert prefix == "data/"
            return (Stored(name, i) for i, name in enumerate(names))

    def sizes(path: str) -> int:
        sized[0] += 1
        return int(path[-12:-4])

    result = verify_storage(Streamed(tmp_path), fast=True, sizes=sizes)
    assert result.ok, result.problems[:3]
    assert result.checked == count
    parse = checked_by_block[-1]
    assert len(parse) > 200 and parse[0] == 0
    assert parse[-1] > count - 1000  # all but the last block's lines checked already


@given(st.binary(), st.lists(st.integers(0, 64), max_size=12))
def test_split_lines_matches_split_on_lf(data: bytes, cuts: list[int]) -> None:
    points = sorted({min(c * len(data) // 64, len(data)) for c in cuts} | {0, len(data)})
    blocks = [data[a:b] for a, b in itertools.pairwise(points)]
    expected = data.split(b"\n")
    if expected[-1] == b"":
        expected.pop()
    assert list(split_lines(blocks)) == expected


def test_split_lines_keeps_a_crlf_cut_between_blocks() -> None:
    assert list(split_lines([b"a\r", b"\nb\r\n", b"", b"c"])) == [b"a\r", b"b\r", b"c"]
