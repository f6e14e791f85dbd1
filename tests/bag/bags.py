"""Bags for the tests: real files, written by write_bag."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path, PurePosixPath

from assetvault.bag.write import PayloadFile, write_bag
from assetvault.storage import LocalStorage

AGENT = "assetvault/test"

# Names bagit-python 1.9 reads back: spaces, one LF, Unicode, nesting, hidden folders, empty.
LOC_SAFE = {
    "plain.txt": b"plain",
    "with space/file name.txt": b"spaced",
    "line\nbreak.txt": b"newline in the name",
    "ünïcødé/日本語.png": b"\x89PNG unicode",
    "deep/a/b/c/d.bin": bytes(range(256)) * 40,
    "empty.dat": b"",
    ".hidden/dot.txt": b"hidden folder",
}
# RFC 8493 §2.1.3 writes '%' as %25; bagit-python 1.9 never decodes it (bagit-python#157).
PERCENT = {"100%.txt": b"percent", "a%0Ab.txt": b"looks encoded"}


def make_payload(root: Path, contents: dict[str, bytes]) -> list[PayloadFile]:
    files = []
    for name, body in contents.items():
        path = root / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        files.append(PayloadFile(PurePosixPath(name), hashlib.sha256(body).hexdigest(), len(body)))
    return sorted(files, key=lambda f: f.path)


def make_state(root: Path) -> None:
    """Junk like assetvault's own state folder: not payload, must not upset validators."""
    (root / ".assetvault" / "partial").mkdir(parents=True)
    (root / ".assetvault" / "state.sqlite").write_bytes(b"SQLite format 3\0junk")
    (root / ".assetvault" / "partial" / "x.part").write_bytes(b"half a file")
    (root / ".assetvault" / "reports").mkdir()
    (root / ".assetvault" / "reports" / "run.json").write_text("{}")


def make_bag(root: Path, contents: dict[str, bytes]) -> list[PayloadFile]:
    files = make_payload(root, contents)
    make_state(root)
    write_bag(LocalStorage(root), iter(files), agent=AGENT, bagging_date=datetime.date(2024, 5, 6))
    return files


# Manifest lines a reader must refuse, each one a problem and nothing else.
BAD_MANIFEST_LINES = [
    "0" * 64 + "  data/../../etc/passwd",
    "0" * 64 + "  /etc/passwd",
    "0" * 64 + "  bagit.txt",
    "0" * 64 + "  data/./plain.txt",
    "not-a-hash  data/plain.txt",
    "0" * 64,
]
BAD_OXUMS = ["12", "a.b", "1.2.3", ""]


def set_oxum(root: Path, value: str) -> None:
    """Payload-Oxum becomes ``value`` (the tag manifest, now wrong, goes)."""
    (root / "tagmanifest-sha256.txt").unlink()
    info = (root / "bag-info.txt").read_text().splitlines()
    info = [f"Payload-Oxum: {value}" if line.startswith("Payload-Oxum") else line for line in info]
    (root / "bag-info.txt").write_text("\n".join(info) + "\n")


def add_manifest_line(root: Path, line: str) -> None:
    """``line`` is appended to the payload manifest (the tag manifest, now wrong, goes)."""
    (root / "tagmanifest-sha256.txt").unlink()
    with open(root / "manifest-sha256.txt", "a", encoding="utf-8") as manifest:
        manifest.write(line + "\n")
