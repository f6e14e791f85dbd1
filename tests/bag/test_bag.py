"""Bag writing and verification, on real files, checked by the Library of Congress validator."""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import bagit
import pytest
from hypothesis import given
from hypothesis import strategies as st

from assetvault.bag.write import (
    PayloadFile,
    decode_path,
    encode_path,
    manifest_line,
    verify_bag,
    write_bag,
)
from assetvault.storage import LocalStorage
from assetvault.storage.local import LocalUpload

from .bags import (
    AGENT,
    BAD_MANIFEST_LINES,
    BAD_OXUMS,
    LOC_SAFE,
    PERCENT,
    add_manifest_line,
    make_bag,
    make_payload,
    set_oxum,
)

BAGIT_CLI = Path(sys.executable).parent / "bagit.py"


def _loc_validate(root: Path) -> None:
    logging.getLogger("bagit").setLevel(logging.ERROR)
    bagit.Bag(str(root)).validate()


def _loc_cli(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BAGIT_CLI), "--validate", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- the Library of Congress validator ------------------------------------------------------


def test_loc_library_accepts_bag_with_state_folder(tmp_path: Path) -> None:
    make_bag(tmp_path, LOC_SAFE)
    _loc_validate(tmp_path)


def test_loc_cli_accepts_bag_with_state_folder(tmp_path: Path) -> None:
    make_bag(tmp_path, LOC_SAFE)
    done = _loc_cli(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "is valid" in done.stderr


@pytest.mark.xfail(
    strict=True,
    raises=bagit.BagValidationError,
    reason="bagit-python 1.9 does not decode %25 (LibraryOfCongress/bagit-python#157)",
)
def test_loc_library_with_percent_names(tmp_path: Path) -> None:
    make_bag(tmp_path, PERCENT)
    _loc_validate(tmp_path)


# -- what write_bag writes ------------------------------------------------------------------


def test_tag_files_content(bag: Path) -> None:
    assert (bag / "bagit.txt").read_bytes() == (
        b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
    )
    total = sum(len(b) for b in (LOC_SAFE | PERCENT).values())
    assert (bag / "bag-info.txt").read_text() == (
        f"Bag-Software-Agent: {AGENT}\nBagging-Date: 2024-05-06\n"
        f"Payload-Oxum: {total}.{len(LOC_SAFE) + len(PERCENT)}\n"
    )
    tagmanifest = (bag / "tagmanifest-sha256.txt").read_text().splitlines()
    tagged = [line.split("  ")[1] for line in tagmanifest]
    assert tagged == ["bag-info.txt", "bagit.txt", "manifest-sha256.txt"]
    assert not [p for p in bag.iterdir() if p.name.endswith(".tmp")]


def test_manifest_is_percent_encoded_in_given_order(bag: Path) -> None:
    lines = (bag / "manifest-sha256.txt").read_text(encoding="utf-8").splitlines()
    paths = [line.split("  ", 1)[1] for line in lines]
    expected = sorted(PurePosixPath(n) for n in LOC_SAFE | PERCENT)
    assert paths == [f"data/{encode_path(str(p))}" for p in expected]
    assert "data/100%25.txt" in paths
    assert "data/a%250Ab.txt" in paths
    assert "data/line%0Abreak.txt" in paths


def test_manifest_line() -> None:
    line = manifest_line(PurePosixPath("a b/c\r%.txt"), "ab" * 32)
    assert line == "ab" * 32 + "  data/a b/c%0D%25.txt"


def test_info_entries_and_default_date(tmp_path: Path) -> None:
    files = make_payload(tmp_path, {"x": b"x"})
    write_bag(LocalStorage(tmp_path), files, agent=AGENT, info={"Source-Organization": "Brand Ops"})
    info = (tmp_path / "bag-info.txt").read_text().splitlines()
    assert info[1] == f"Bagging-Date: {datetime.date.today().isoformat()}"
    assert info[3] == "Source-Organization: Brand Ops"


@pytest.mark.parametrize(
    "info",
    [{"Payload-Oxum": "1.1"}, {"Bad:Label": "x"}, {"Note": "two\nlines"}, {"": "x"}],
)
def test_bad_info_is_refused_before_anything_is_written(
    tmp_path: Path, info: dict[str, str]
) -> None:
    with pytest.raises(ValueError):
        write_bag(LocalStorage(tmp_path), [], agent=AGENT, info=info)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "entry",
    [
        PayloadFile(PurePosixPath("../escape"), "0" * 64, 1),
        PayloadFile(PurePosixPath("/etc/passwd"), "0" * 64, 1),
        PayloadFile(PurePosixPath("."), "0" * 64, 1),
        PayloadFile(PurePosixPath("ok"), "A" * 64, 1),
        PayloadFile(PurePosixPath("ok"), "0" * 63, 1),
        PayloadFile(PurePosixPath("ok"), "0" * 64, -1),
    ],
)
def test_bad_payload_entry_leaves_previous_bag_intact(tmp_path: Path, entry: PayloadFile) -> None:
    files = make_bag(tmp_path, LOC_SAFE)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(ValueError):
        write_bag(LocalStorage(tmp_path), [*files, entry], agent=AGENT)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before


def test_duplicate_path_is_refused(tmp_path: Path) -> None:
    files = make_payload(tmp_path, {"x": b"x"})
    with pytest.raises(ValueError, match="twice"):
        write_bag(LocalStorage(tmp_path), files * 2, agent=AGENT)


def test_rewrite_after_more_payload_and_leftover_temp_files(tmp_path: Path) -> None:
    make_bag(tmp_path, LOC_SAFE)
    (tmp_path / ".manifest-sha256.txt.0123abcd.tmp").write_text("crashed write")
    files = make_payload(tmp_path, LOC_SAFE | {"later/new.txt": b"second run"})
    write_bag(LocalStorage(tmp_path), files, agent=AGENT)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    _loc_validate(tmp_path)
    assert verify_bag(tmp_path).ok


def test_files_are_streamed_not_listed(tmp_path: Path) -> None:
    count, written_meanwhile = 20_000, []

    def entries() -> Iterator[PayloadFile]:
        for i in range(count):
            if i == count - 1:  # still iterating: the manifest must already be on its way
                staged = list(tmp_path.glob(".manifest-sha256.txt.*.tmp"))
                written_meanwhile.extend(p.stat().st_size for p in staged)
            yield PayloadFile(PurePosixPath(f"d/{i:08d}.bin"), f"{i:064x}", i)

    write_bag(LocalStorage(tmp_path), entries(), agent=AGENT)
    assert len(written_meanwhile) == 1 and written_meanwhile[0] > 1_000_000
    oxum = f"Payload-Oxum: {count * (count - 1) // 2}.{count}"
    assert oxum in (tmp_path / "bag-info.txt").read_text()


# -- verify_bag -----------------------------------------------------------------------------


def test_verify_ok(bag: Path) -> None:
    result = verify_bag(bag)
    assert result.ok, result
    assert result.checked == len(LOC_SAFE) + len(PERCENT)


def test_flipped_byte_is_the_only_mismatch(bag: Path) -> None:
    target = bag / "data" / "deep/a/b/c/d.bin"
    body = bytearray(target.read_bytes())
    body[100] ^= 0x01
    target.write_bytes(body)
    result = verify_bag(bag, workers=4)
    assert result.mismatched == ["data/deep/a/b/c/d.bin"]
    assert (result.missing, result.extra, result.problems) == ([], [], [])
    assert not result.ok


def test_deleted_file_is_missing(bag: Path) -> None:
    (bag / "data" / "100%.txt").unlink()
    result = verify_bag(bag)
    assert result.missing == ["data/100%.txt"]
    assert (result.extra, result.mismatched) == ([], [])
    assert any("Payload-Oxum" in p for p in result.problems)


def test_added_file_is_extra(bag: Path) -> None:
    (bag / "data" / ".hidden" / "stray").write_bytes(b"not in the manifest")
    result = verify_bag(bag)
    assert result.extra == ["data/.hidden/stray"]
    assert (result.missing, result.mismatched) == ([], [])


def test_all_problems_reported_together(bag: Path) -> None:
    (bag / "data" / "plain.txt").write_bytes(b"PLAIN")
    (bag / "data" / "empty.dat").unlink()
    (bag / "data" / "new.txt").write_bytes(b"new")
    result = verify_bag(bag)
    assert (result.mismatched, result.missing, result.extra) == (
        ["data/plain.txt"],
        ["data/empty.dat"],
        ["data/new.txt"],
    )


def test_fast_mode_with_sizes_catches_truncation(bag: Path) -> None:
    sizes = {f"data/{name}": len(body) for name, body in (LOC_SAFE | PERCENT).items()}
    target = bag / "data" / "line\nbreak.txt"
    target.write_bytes(target.read_bytes()[:-3])
    result = verify_bag(bag, fast=True, sizes=sizes.get)
    assert result.mismatched == ["data/line\nbreak.txt"]
    assert result.checked == len(sizes)


def test_fast_mode_does_not_hash(bag: Path) -> None:
    (bag / "data" / "plain.txt").write_bytes(b"PLAIN")  # same size, other bytes
    assert verify_bag(bag, fast=True).ok
    assert not verify_bag(bag).ok


def test_fast_mode_catches_truncation_by_oxum_without_sizes(bag: Path) -> None:
    (bag / "data" / "plain.txt").write_bytes(b"pla")
    result = verify_bag(bag, fast=True)
    assert [p for p in result.problems if "Payload-Oxum" in p]


def test_no_bagit_txt(bag: Path) -> None:
    (bag / "bagit.txt").unlink()
    result = verify_bag(bag)
    assert any("bagit.txt" in p for p in result.problems)


def test_tag_manifest_mismatch(bag: Path) -> None:
    with open(bag / "bag-info.txt", "a") as info:
        info.write("Contact-Name: someone\n")
    result = verify_bag(bag)
    assert result.problems == ["bag-info.txt does not match tagmanifest-sha256.txt"]


def test_missing_tag_manifest_is_allowed(bag: Path) -> None:
    # The state write_bag leaves if it dies between removing and replacing the tag manifest.
    (bag / "tagmanifest-sha256.txt").unlink()
    assert verify_bag(bag).ok


@pytest.mark.parametrize("oxum", BAD_OXUMS)
def test_bad_payload_oxum(bag: Path, oxum: str) -> None:
    set_oxum(bag, oxum)
    assert any("Payload-Oxum" in p for p in verify_bag(bag).problems)


@pytest.mark.parametrize("line", BAD_MANIFEST_LINES)
def test_bad_manifest_lines_are_problems(bag: Path, line: str) -> None:
    add_manifest_line(bag, line)
    result = verify_bag(bag)
    assert any("not a valid entry" in p for p in result.problems), result.problems
    assert (result.missing, result.extra, result.mismatched) == ([], [], [])


def test_symlinks_are_problems_and_never_followed(
    bag: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret").write_text("outside the bag")
    os.symlink(outside / "secret", bag / "data" / "link")
    os.symlink(outside, bag / "data" / "linkdir")
    result = verify_bag(bag)
    assert sorted(p.split(":")[0] for p in result.problems if "symbolic" in p) == [
        "data/link",
        "data/linkdir",
    ]
    assert result.extra == []


def test_symlinked_payload_file_is_not_hashed_through(
    bag: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    target = bag / "data" / "plain.txt"
    copy = tmp_path_factory.mktemp("elsewhere") / "plain-copy"
    copy.write_bytes(target.read_bytes())
    target.unlink()
    os.symlink(copy, target)
    result = verify_bag(bag)
    assert result.missing == ["data/plain.txt"]
    assert any("symbolic" in p for p in result.problems)


def test_tag_manifest_entries_outside_or_missing(
    bag: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret").write_text("outside the bag")
    os.symlink(outside, bag / "elsewhere")
    with open(bag / "tagmanifest-sha256.txt", "a") as tagmanifest:
        tagmanifest.write("0" * 64 + "  elsewhere/secret\n")
        tagmanifest.write("0" * 64 + "  gone.txt\n")
        tagmanifest.write("0" * 64 + "  ../up.txt\n")
    problems = verify_bag(bag).problems
    assert problems[0] == "elsewhere/secret (listed in tagmanifest-sha256.txt) is outside the bag"
    assert problems[1].startswith("gone.txt (listed in tagmanifest-sha256.txt)")
    assert "not a valid entry" in problems[2]
    assert len(problems) == 3


def test_unicode_normalisation_differences_still_match(tmp_path: Path) -> None:
    name = unicodedata.normalize("NFC", "café.txt")
    files = make_payload(tmp_path, {unicodedata.normalize("NFD", name): b"coffee"})
    nfc = [PayloadFile(PurePosixPath(name), f.sha256, f.size) for f in files]
    write_bag(LocalStorage(tmp_path), nfc, agent=AGENT)
    result = verify_bag(tmp_path)
    assert result.ok, result
    assert result.checked == 1


def test_not_a_bag(tmp_path: Path) -> None:
    result = verify_bag(tmp_path)
    assert not result.ok
    assert len(result.problems) >= 3  # bagit.txt, bag-info.txt, data/, manifest


# -- percent-encoding -----------------------------------------------------------------------


@given(st.text(alphabet=st.sampled_from("%\r\n0aAdD25x/é ")) | st.text())
def test_percent_encoding_round_trip(name: str) -> None:
    encoded = encode_path(name)
    assert decode_path(encoded) == name
    assert "\r" not in encoded and "\n" not in encoded
    assert encoded.count("%") == encoded.count("%25") + encoded.count("%0D") + encoded.count("%0A")


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [("a%0ab", "a\nb"), ("a%0d%0A", "a\r\n"), ("100%25", "100%"), ("%250A", "%0A"), ("50%", "50%")],
)
def test_decode_accepts_any_hex_case_and_leaves_other_percents(raw: str, decoded: str) -> None:
    assert decode_path(raw) == decoded


def test_a_seal_cut_short_never_leaves_a_wrong_tag_manifest(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """Killed between committing the new manifest and the new tag manifest, the bag has no
    tag manifest (RFC 8493 allows none), never the old one naming the old manifest's digest."""
    make_bag(tmp_path, LOC_SAFE)
    files = make_payload(tmp_path, LOC_SAFE | {"later/new.txt": b"second run"})
    real_commit = LocalUpload.commit
    committed: list[str] = []

    def dies_after_manifest(self: LocalUpload, meta: object = None) -> None:
        if committed and committed[-1].endswith("manifest-sha256.txt"):
            raise KeyboardInterrupt  # the process dies here
        real_commit(self)
        committed.append(self._target)

    monkeypatch.setattr(LocalUpload, "commit", dies_after_manifest)
    with pytest.raises(KeyboardInterrupt):
        write_bag(LocalStorage(tmp_path), files, agent=AGENT)
    monkeypatch.undo()
    assert committed and committed[-1].endswith("manifest-sha256.txt")
    tags = tmp_path / "tagmanifest-sha256.txt"
    for line in tags.read_text().splitlines() if tags.exists() else []:
        digest, name = line.split("  ", 1)
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest, name
