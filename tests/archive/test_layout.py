"""layout: safe names, paths per source, and the never-escapes check."""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from urllib.parse import quote, unquote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from assetvault.archive import layout
from assetvault.archive.layout import (
    extension_for,
    file_name_from_url,
    onpremise_dir,
    safe_segment,
    spectrum_dir,
    urls_path,
)
from assetvault.storage.local import inside  # where safe names are finally written

RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)),
            *(f"LPT{i}" for i in range(10))}

# Text that hits the interesting cases often: separators, dots, controls, device names,
# combining marks (NFC), wide characters (byte limit), and lone surrogates.
PIECES = [*'./\\<>:"|?*~ \x00\x1f\x7f\x85\u0301\u0338e€😀', "\ud800", "CON", "nul", "COM1",
          "~0123456789ab", ".png"]
tricky = st.lists(st.one_of(st.sampled_from(PIECES), st.characters()), max_size=60).map(
    "".join
) | st.builds(lambda a, n: a * n, st.sampled_from(["é", "😀", "a", "e\u0301", "x."]),
              st.integers(0, 300)) | st.text(min_size=100, max_size=400)


def check_segment(out: str) -> None:
    assert out
    assert "/" not in out and "\\" not in out and "\x00" not in out
    assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in out)
    assert not any(c in '<>:"|?*' for c in out)
    assert out not in (".", "..")
    assert not out.endswith((".", " "))
    assert len(out.encode()) <= 255
    assert unicodedata.normalize("NFC", out) == out
    assert out.split(".", 1)[0].rstrip(" ").upper() not in RESERVED


@given(tricky)
def test_safe_segment_is_one_safe_segment(name: str) -> None:
    out = safe_segment(name)
    check_segment(out)
    assert PurePosixPath(out).parts == (out,)


def _drop_controls(s: str) -> str:
    return "".join(c for c in s if unicodedata.category(c) not in ("Cc", "Cs"))


def _cut(s: str) -> str:
    return s.encode("utf-8", "surrogatepass")[:255].decode("utf-8", "ignore")


# Each maps a name to another that a naive sanitiser would send to the same place: what
# safe_segment itself drops, replaces, folds or cuts, and its own output fed back in.
NEAR: dict[str, Callable[[str], str]] = {
    "upper": str.upper,
    "lower": str.lower,
    "swapcase": str.swapcase,
    "last letter's case": lambda s: s[:-1] + s[-1:].swapcase(),  # where a cut name differs
    "nfd": lambda s: unicodedata.normalize("NFD", s),
    "nfc": lambda s: unicodedata.normalize("NFC", s),
    "nfkc": lambda s: unicodedata.normalize("NFKC", s),
    "sanitised": layout._clean,  # exactly what the cleaning step makes of it
    "invalid as _": lambda s: re.sub(r'[/\\<>:"|?*%]', "_", s),
    "_ as invalid": lambda s: s.replace("_", "?"),
    "_ as slash": lambda s: s.replace("_", "/"),
    "controls dropped": _drop_controls,
    "nul in front": lambda s: "\x00" + s,
    "trailing dot": lambda s: s + ".",
    "trailing space": lambda s: s + " ",
    "trailing dots stripped": lambda s: s.rstrip(". "),
    "dotdot": lambda s: s + "..",
    "reserved in front": lambda s: "CON" + s,
    "reserved ext": lambda s: "con." + s,
    "underscore in front": lambda s: "_" + s,
    "cut at the limit": _cut,
    "past the limit": lambda s: s + "x" * 300,
    "past the limit by one": lambda s: _cut(s + "x" * 300) + "y",
    "its own output": safe_segment,
    "hash look-alike": lambda s: s + "~" + layout.short_hash(s),
    "percent-encoded": lambda s: quote(s, safe="", errors="surrogatepass"),
    "percent-decoded": lambda s: unquote(s, errors="surrogateescape"),
    "extension": lambda s: s + ".png",
    "extension upper": lambda s: s + ".PNG",
    "empty": lambda s: "",
}
near = st.sampled_from(sorted(NEAR))


@settings(max_examples=600)
@given(tricky | st.sampled_from(["", ".", "..", "CON", "a?b", "x" * 260, "e\u0301"]),
       st.lists(near, min_size=1, max_size=3))
@example("a?b", ["sanitised"])
@example("a.", ["trailing dots stripped"])
@example("CON", ["underscore in front"])
@example("e\u0301.png", ["nfc"])
@example("x" * 300, ["past the limit by one"])
@example("x" * 300, ["last letter's case"])
@example("a?.png", ["its own output"])
@example("..", ["sanitised"])
@example("a%2Fb", ["percent-decoded"])
def test_safe_segment_is_injective(a: str, steps: list[str]) -> None:
    """Pairs built to collide under naive sanitisation still get two names."""
    b = a
    for step in steps:
        b = NEAR[step](b)
    if a != b:
        assert safe_segment(a) != safe_segment(b), (a, b, steps)


@pytest.mark.parametrize("name", ["a.png", "CCG60521324002R1.DST", "7000000000000300322",
                                  "web_thumb.jpg", "naïve café.pdf", "~tilde", "a~1.png"])
def test_clean_names_stay(name: str) -> None:
    assert safe_segment(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\\b", "CON", "con.png", "LPT1.tar.gz",
                                  "COM¹", "x\x00y", "tab\tname", "name. ", "q?.png", "e\u0301"])
def test_unsafe_names_get_a_hash(name: str) -> None:
    out = safe_segment(name)
    check_segment(out)
    assert out != name
    assert "~" + layout.short_hash(name) in out


def test_hash_goes_before_the_extension() -> None:
    assert safe_segment("a?.png") == "a_~" + layout.short_hash("a?.png") + ".png"
    assert safe_segment("CON.png").startswith("_CON~")


def test_name_that_looks_hashed_is_hashed_again() -> None:
    hashed = safe_segment("a?.png")
    assert safe_segment(hashed) != hashed


def test_long_name_keeps_extension_and_cuts_at_a_character() -> None:
    out = safe_segment("😀" * 100 + ".png")
    assert out.endswith(".png") and len(out.encode()) <= 255
    out.encode().decode()  # whole characters only


def test_extension_for() -> None:
    assert extension_for("https://h/a/B.PNG?x=1#f") == ".png"
    assert extension_for("https://h/a/archive.tar.gz") == ".gz"
    assert extension_for("https://h/a/file%2Ename.JPG") == ".jpg"
    assert extension_for("https://h/a/v1.2") == ""
    assert extension_for("https://h/a/noext", "image/jpeg; charset=binary") == ".jpg"
    assert extension_for("https://h/a/noext", "image/png") == ".png"
    assert extension_for("https://h/a/noext", "application/octet-stream") == ""
    assert extension_for("https://h/a/noext", None) == ""
    assert extension_for("https://h/a.png/", "image/gif") == ".gif"
    assert extension_for("http://[::1", "application/pdf") == ".pdf"


def test_file_name_from_url() -> None:
    assert file_name_from_url("https://h/x/CCG1R1.DST") == "CCG1R1.DST"
    assert file_name_from_url("https://h/x/a%20b.png") == "a b.png"
    assert file_name_from_url("https://h/x/") == "file"
    assert file_name_from_url("https://h") == "file"
    slash = file_name_from_url("https://h/x/a%2F..%2Fb.png")
    check_segment(slash)
    assert slash.endswith(".png")
    bad_utf8 = file_name_from_url("https://h/%ff%fe.png")
    check_segment(bad_utf8)
    assert bad_utf8 != file_name_from_url("https://h/%fe%ff.png")
    assert file_name_from_url("https://h/..") != file_name_from_url("https://h/.")


def test_source_dirs() -> None:
    assert spectrum_dir("carhartt", "7000", "1234") == "spectrum/carhartt/7000/1234"
    assert onpremise_dir("products", "1001", "1966") == "onpremise/products/1001/1966"
    assert spectrum_dir("..", "/", "a/../b").split("/")[1] != ".."
    assert len(spectrum_dir("..", "/", "a/../b").split("/")) == 4
    assert layout.spectrum_job_dir("16797", "CCG60521324002") == "16797-CCG60521324002"
    assert layout.spectrum_job_dir("16797", None) == "16797"
    assert layout.named("original", ".png") == "original.png"
    # An empty version name made a hidden ".jpg"; "unnamed" itself stays apart from it.
    for empty in ("", " ", "..", ". ."):
        made = layout.named(empty, ".jpg")
        assert made.startswith("unnamed~") and made.endswith(".jpg"), made
    assert layout.named("", ".jpg") != layout.named(" ", ".jpg") != layout.named("unnamed", ".jpg")


def test_suffix_is_purepath_suffix() -> None:
    for rel in ("a/b.png", "a/.bashrc", "a/b.", "b", "a.b/c", "a/b.tar.gz", "x/..png"):
        assert layout.suffix(rel) == PurePosixPath(rel).suffix, rel


def test_urls_path() -> None:
    assert urls_path("j", "https://x.com/a/b.png?q=1", None) == "urls/j/x.com/a/b.png"
    assert urls_path("j", "https://x.com:8080/a/", None) == "urls/j/x.com_8080/a/index"
    assert PurePosixPath(urls_path("j", "https://x.com/%E2%82%AC.png", None)).name == "€.png"
    assert urls_path("j", "https://x.com/a", "./dir\\sub//f.png") == "urls/j/dir/sub/f.png"
    assert urls_path("j", "https://x.com/a", "/") == "urls/j/x.com/a"
    escaped = urls_path("j", "https://x.com/a", "../../etc/passwd")
    assert ".." not in escaped.split("/")
    assert urls_path("j", "", None).split("/")[:2] == ["urls", "j"]
    assert urls_path("j", "http://x.com:99999/a", None).split("/")[2] == "_invalid"


def test_an_over_long_urls_path_is_shortened_not_failed() -> None:
    """A CSV may nest a file thousands of folders deep: the whole path stays within 1,024
    bytes (PATH_MAX would fail the file), keeps the file name, stays the same from run to
    run, and differs wherever the raw paths differ."""
    deep = "/".join(["x" * 250] * 17) + "/f.bin"
    path = urls_path("j", "http://h/a", deep)
    assert len(path.encode()) <= layout.MAX_PATH_BYTES
    assert path.startswith("urls/j/" + "x" * 250 + "/") and path.endswith("/f.bin")
    assert path == urls_path("j", "http://h/a", deep)
    assert path != urls_path("j", "http://h/a", deep.replace("x/f.bin", "y/f.bin"))
    assert path != urls_path("j", "http://h/a", "/".join(["x" * 250] * 18) + "/f.bin")
    nested = urls_path("j", "http://h/" + "y/" * 2100 + "f", None)
    assert len(nested.encode()) <= layout.MAX_PATH_BYTES and nested.endswith("/f")
    assert inside(Path("/archive/data"), path)  # still a path a file can be placed at
    # What no name can become: a plain segment of the hash's form is hashed again.
    assert urls_path("j", "http://h/a", path.split("/")[-2] + "/f.bin").split("/")[2] != (
        path.split("/")[-2])
    multibyte = urls_path("j", "http://h/a", "/".join(["\u00e9" * 120] * 9) + "/g")
    assert len(multibyte.encode()) <= layout.MAX_PATH_BYTES


def test_tagged_keeps_extension_and_limit() -> None:
    assert layout.tagged("a.png", "1234") == "a~1234.png"
    long = safe_segment("x" * 300 + ".png")
    assert len(layout.tagged(long, "12345678").encode()) <= 255


def test_inside(tmp_path: Path) -> None:
    assert inside(tmp_path, PurePosixPath("a/b.png")) == tmp_path.resolve() / "a" / "b.png"
    for rel in ("../x", "a/../../x", "/etc/passwd"):
        with pytest.raises(ValueError):
            inside(tmp_path, PurePosixPath(rel))
    (tmp_path / "link").symlink_to("/")
    with pytest.raises(ValueError):
        inside(tmp_path, PurePosixPath("link/etc"))


segments = st.lists(st.one_of(st.sampled_from(["..", ".", "", "/", "a", "/etc", "..\\.."]),
                              tricky), max_size=6)


@settings(max_examples=200)
@given(segments)
def test_inside_never_escapes(parts: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = os.path.realpath(root)
        for rel in (PurePosixPath(*parts), PurePosixPath(*(safe_segment(p) for p in parts))):
            try:
                out = inside(root, rel)
            except ValueError:
                assert rel.parts != tuple(safe_segment(p) for p in parts), "safe path refused"
                continue
            assert os.path.commonpath([base, str(out)]) == base


@pytest.mark.parametrize(("key", "stem"), [
    ("spectrum/c/o/1/original.png", "spectrum/c/o/1/original"),
    ("spectrum/c/o/1/original", "spectrum/c/o/1/original"),
    ("onpremise/products/1/10/original.jpg", "onpremise/products/1/10/original"),
    ("onpremise/p/1/10/versions/web_thumb.jpg", "onpremise/p/1/10/versions/web_thumb"),
    ("spectrum/c/o/1/original~1a2b3c4d5e6f.png", None),  # another file's name
    ("spectrum/c/o/1/original.tar.gz", None),
    ("spectrum/c/o/1/jobs/7-R/original.png", None),  # an output: named by its URL
    ("spectrum/c/o/1/asset.json", None),
    ("urls/job/host/a/original.png", None),
])
def test_the_stem_of_a_name_that_takes_its_extension_from_the_url(key: str,
                                                                  stem: str | None) -> None:
    assert layout.replaceable_stem(key) == stem
