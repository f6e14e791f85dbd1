"""Reading a BagIt bag (RFC 8493): the format's primitives and :func:`verify_bag`.

This module is the reading half; :mod:`assetvault.bag.write` writes bags and re-exports
everything public here, so callers can use it alone. The import points one way
(``bag -> verify``) so the two halves share one definition of the format.

Verification collects every problem before returning, bagit-python style: all missing, extra
and mismatched files are reported together, never the first one alone.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import os
import posixpath
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

BAGIT_TXT = "bagit.txt"
BAG_INFO_TXT = "bag-info.txt"
MANIFEST = "manifest-sha256.txt"
TAGMANIFEST = "tagmanifest-sha256.txt"
PAYLOAD_DIR = "data"
CHUNK = 1 << 20  # 1 MiB: large enough that hashlib releases the GIL while hashing

_ENTRY = re.compile(r"([0-9A-Fa-f]{64})[ \t]+(.+)")
_OXUM = re.compile(r"(\d+)\.(\d+)")
_VERSION = re.compile(r"\d+\.\d+")
_DECODE = re.compile(r"%(25|0[AaDd])")
_DECODED = {"25": "%", "0A": "\n", "0D": "\r"}
_BOM = b"\xef\xbb\xbf"

Sizes = Callable[[str], int | None]


def decode_path(p: str) -> str:
    """Undo RFC 8493 §2.1.3 encoding: ``%0D``, ``%0A`` and ``%25`` (any hex case), one pass.

    One left-to-right pass, so ``%250A`` becomes ``%0A`` and not a newline. Any other ``%``
    is left alone: a conformant writer never produces one, and bagit-python writes ``%``
    unencoded, so leaving it is the most forgiving reading.
    """
    return _DECODE.sub(lambda m: _DECODED[m.group(1).upper()], p)


def is_safe_payload_path(p: str) -> bool:
    """True if ``p`` is ``data/...``, already normal (no ``..``, ``.``, ``//``), without NUL."""
    return p.startswith(PAYLOAD_DIR + "/") and posixpath.normpath(p) == p and "\0" not in p


def parse_tags(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Parse a tag file into ``(label, value)`` pairs, unfolding continuation lines.

    Returns the pairs and the lines that are not ``Label: value`` (for reporting).
    """
    tags: list[tuple[str, str]] = []
    bad: list[str] = []
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and tags:
            label, value = tags[-1]
            tags[-1] = (label, f"{value} {line.strip()}".strip())
        elif ":" in line:
            label, _, value = line.partition(":")
            tags.append((label.strip(), value.strip()))
        elif line.strip():
            bad.append(line)
    return tags, bad


@dataclass
class VerifyResult:
    """Everything wrong with a bag; payload paths are in ``data/...`` form, sorted."""

    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    checked: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.mismatched or self.problems)


def verify_bag(
    root: Path, *, fast: bool = False, sizes: Sizes | None = None, workers: int = 2
) -> VerifyResult:
    """Check the bag at ``root`` against its manifests; report every problem found.

    Full mode re-hashes each payload file in a pool of ``workers`` threads. Fast mode does
    not hash: it checks existence, extras, Payload-Oxum and, given ``sizes``, each file's
    size against ``sizes("data/...")`` (``None`` means unknown: not checked).
    """
    root = Path(root)
    result = VerifyResult()
    _check_bagit_txt(root, result)
    oxum = _read_oxum(root, result)
    _check_tagmanifest(root, result)
    on_disk = _walk_payload(root, result)
    _check_oxum(oxum, on_disk, result)
    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        checker = _PayloadChecker(root, on_disk, result, pool, sizes, fast, workers)
        for path, digest in _manifest_entries(root, MANIFEST, result, payload=True):
            checker.entry(path, digest)
        checker.finish()
    for found in (result.missing, result.extra, result.mismatched):
        found.sort()
    return result


# -- bagit.txt, bag-info.txt, tagmanifest ------------------------------------------------


def _check_bagit_txt(root: Path, result: VerifyResult) -> None:
    try:
        raw = (root / BAGIT_TXT).read_bytes()
    except OSError:
        result.problems.append(f"{BAGIT_TXT} is missing: {root} is not a bag")
        return
    if raw.startswith(_BOM):
        result.problems.append(f"{BAGIT_TXT} starts with a byte-order mark (RFC 8493 §2.1.1)")
    tags = dict(parse_tags(raw.decode("utf-8", "replace").lstrip("\ufeff"))[0])
    if not _VERSION.fullmatch(tags.get("BagIt-Version", "")):
        result.problems.append(f"{BAGIT_TXT}: no valid BagIt-Version")
    if tags.get("Tag-File-Character-Encoding", "").upper() not in ("UTF-8", "UTF8"):
        # Everything here is read as UTF-8, so another encoding cannot be checked honestly.
        result.problems.append(f"{BAGIT_TXT}: Tag-File-Character-Encoding is not UTF-8")


def _read_oxum(root: Path, result: VerifyResult) -> tuple[int, int] | None:
    try:
        text = (root / BAG_INFO_TXT).read_text("utf-8", "replace")
    except OSError:
        result.problems.append(f"{BAG_INFO_TXT} is missing (it must carry Payload-Oxum)")
        return None
    tags, bad = parse_tags(text)
    result.problems.extend(f"{BAG_INFO_TXT}: not a tag line: {line!r}" for line in bad)
    values = [value for label, value in tags if label == "Payload-Oxum"]
    match = _OXUM.fullmatch(values[0]) if len(values) == 1 else None
    if match is None:
        result.problems.append(f"{BAG_INFO_TXT}: need exactly one Payload-Oxum BYTES.COUNT")
        return None
    return int(match[1]), int(match[2])


def _check_oxum(
    oxum: tuple[int, int] | None, on_disk: dict[str, int], result: VerifyResult
) -> None:
    found = (sum(on_disk.values()), len(on_disk))
    if oxum is not None and oxum != found:
        result.problems.append(
            f"Payload-Oxum says {oxum[0]} bytes in {oxum[1]} files, "
            f"{PAYLOAD_DIR}/ has {found[0]} bytes in {found[1]} files"
        )


def _check_tagmanifest(root: Path, result: VerifyResult) -> None:
    # The tag manifest is optional (RFC 8493 §2.2.1), and write_bag removes the old one just
    # before replacing the tag files, so its absence is not a problem; a wrong one is.
    if not (root / TAGMANIFEST).exists():
        return
    real_root = os.path.realpath(root)
    for name, digest in _manifest_entries(root, TAGMANIFEST, result, payload=False):
        try:
            if not _inside(real_root, name):
                result.problems.append(f"{name} (listed in {TAGMANIFEST}) is outside the bag")
            elif _hash_file(real_root, name) != digest:
                result.problems.append(f"{name} does not match {TAGMANIFEST}")
        except OSError as exc:
            result.problems.append(f"{name} (listed in {TAGMANIFEST}): {exc}")


# -- manifests -------------------------------------------------------------------------------


def _manifest_entries(
    root: Path, name: str, result: VerifyResult, *, payload: bool
) -> Iterator[tuple[str, str]]:
    """Yield ``(decoded path, lower-case digest)`` per valid line; report the others."""
    try:
        manifest = open(root / name, "rb")  # noqa: SIM115 - closed by the with below
    except OSError:
        result.problems.append(f"{name} is missing")
        return
    with manifest:
        # Binary lines split on LF only: CR and LF inside names are percent-encoded, so a bare
        # CR can only be the first half of a CRLF line ending.
        for number, raw in enumerate(manifest, 1):
            entry = _parse_entry(raw, payload)
            if entry is None:
                result.problems.append(f"{name} line {number}: not a valid entry: {raw!r}")
            elif entry[0]:
                yield entry


def _parse_entry(raw: bytes, payload: bool) -> tuple[str, str] | None:
    """``("", "")`` for a blank line, None for a bad one, else ``(path, digest)``."""
    try:
        line = raw.rstrip(b"\n").rstrip(b"\r").decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not line.strip():
        return "", ""
    match = _ENTRY.fullmatch(line)
    if match is None:
        return None
    path = decode_path(match[2])
    safe = is_safe_payload_path(path) if payload else _is_safe_tag_path(path)
    return (path, match[1].lower()) if safe else None


def _is_safe_tag_path(p: str) -> bool:
    normal = posixpath.normpath(p) == p and not p.startswith(("/", "../")) and p != ".."
    return normal and "\0" not in p and not p.startswith(PAYLOAD_DIR + "/")


# -- the payload ---------------------------------------------------------------------------


def _walk_payload(root: Path, result: VerifyResult) -> dict[str, int]:
    """Map every regular file under ``data/`` (hidden ones too) to its size.

    Uses os.scandir with an explicit stack: no recursion limit, and on Linux the file type
    comes from the directory entry, so only one lstat per file (for its size).
    """
    files: dict[str, int] = {}
    if not os.path.isdir(root / PAYLOAD_DIR) or os.path.islink(root / PAYLOAD_DIR):
        result.problems.append(f"{PAYLOAD_DIR}/ is missing or not a directory")
        return files
    base, stack = os.fspath(root), [PAYLOAD_DIR]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(os.path.join(base, folder)) as entries:
                for entry in entries:
                    _visit(entry, f"{folder}/{entry.name}", stack, files, result)
        except OSError as exc:
            result.problems.append(f"{folder}: cannot list: {exc}")
    return files


def _visit(
    entry: os.DirEntry[str], rel: str, stack: list[str], files: dict[str, int], result: VerifyResult
) -> None:
    try:
        if entry.is_symlink():
            # Never followed: a link could lead out of the bag, and the manifest vouches for
            # bytes in the bag, not for whatever the link points at today.
            result.problems.append(f"{rel}: symbolic link in the payload")
        elif entry.is_dir(follow_symlinks=False):
            stack.append(rel)
        elif entry.is_file(follow_symlinks=False):
            files[rel] = entry.stat(follow_symlinks=False).st_size
        else:
            result.problems.append(f"{rel}: not a regular file")
    except OSError as exc:
        result.problems.append(f"{rel}: {exc}")


def _inside(real_root: str, rel: str) -> bool:
    """True if ``rel`` resolves (symlinks and all) to somewhere inside the bag."""
    resolved = os.path.realpath(os.path.join(real_root, rel))
    return os.path.commonpath([real_root, resolved]) == real_root


_buffers = threading.local()


def _hash_file(real_root: str, rel: str) -> str:
    """SHA-256 of ``rel`` under the bag, read in 1 MiB chunks into a per-thread buffer."""
    buffer: bytearray | None = getattr(_buffers, "chunk", None)
    if buffer is None:  # allocating (and zeroing) 1 MiB per file would cost more than tiny files
        buffer = _buffers.chunk = bytearray(CHUNK)
    view, digest = memoryview(buffer), hashlib.sha256()
    # O_NOFOLLOW: the last component cannot be swapped for a link after the walk saw a file.
    fd = os.open(os.path.join(real_root, rel), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with open(fd, "rb", buffering=0) as f:
        while count := f.readinto(buffer):
            digest.update(view[:count])
    return digest.hexdigest()


class _PayloadChecker:
    """Matches manifest entries (streamed) against the files on disk and checks each.

    Memory stays at one set-of-paths: an entry moves from ``on_disk`` to ``seen`` when
    matched, so what remains in ``on_disk`` at the end is exactly the extras.
    """

    def __init__(
        self,
        root: Path,
        on_disk: dict[str, int],
        result: VerifyResult,
        pool: concurrent.futures.Executor,
        sizes: Sizes | None,
        fast: bool,
        workers: int,
    ) -> None:
        self.real_root = os.path.realpath(root)
        self.on_disk, self.result, self.pool = on_disk, result, pool
        self.sizes, self.fast = sizes, fast
        self.seen: set[str] = set()
        self.safe_dirs: set[str] = set()
        self.unmatched: list[tuple[str, str]] = []
        self.pending: collections.deque[concurrent.futures.Future[_Outcome]] = collections.deque()
        self.window = 8 * max(1, workers)

    def entry(self, path: str, digest: str) -> None:
        if path in self.on_disk:
            self.seen.add(path)
            self._check(path, path, digest, self.on_disk.pop(path))
        elif path in self.seen:
            self.result.problems.append(f"{MANIFEST}: {path} is listed more than once")
        else:
            self.unmatched.append((path, digest))

    def finish(self) -> None:
        self._pair_normalized()
        while self.pending:
            self._collect(self.pending.popleft())
        self.result.extra.extend(self.on_disk)
        self.on_disk.clear()

    def _pair_normalized(self) -> None:
        # A bag copied through a filesystem that renormalises Unicode (HFS+: NFD) still names
        # the same files; bagit-python matches them this way too. Only leftovers pay for it.
        if not self.unmatched:
            return
        by_nfc = {unicodedata.normalize("NFC", p): p for p in self.on_disk}
        for path, digest in self.unmatched:
            twin = by_nfc.pop(unicodedata.normalize("NFC", path), None)
            if twin is None:
                self.result.missing.append(path)
            else:
                self._check(path, twin, digest, self.on_disk.pop(twin))

    def _check(self, name: str, on_disk: str, digest: str, size: int) -> None:
        self.result.checked += 1
        if self.fast:
            expected = self.sizes(name) if self.sizes else None
            if expected is not None and expected != size:
                self.result.mismatched.append(name)
            return
        if not self._inside(on_disk):
            self.result.problems.append(f"{name}: resolves outside the bag, not read")
            return
        # A bounded window of futures: memory stays flat however many files the bag holds.
        if len(self.pending) >= self.window:
            self._collect(self.pending.popleft())
        self.pending.append(self.pool.submit(_rehash, self.real_root, name, on_disk, digest))

    def _inside(self, rel: str) -> bool:
        # The walk never follows links, so this only guards against a folder swapped for a
        # link since. Checked once per folder per run: realpath costs more than a small hash.
        folder = posixpath.dirname(rel)
        if folder not in self.safe_dirs:
            if not _inside(self.real_root, folder):
                return False
            self.safe_dirs.add(folder)
        return True

    def _collect(self, future: concurrent.futures.Future[_Outcome]) -> None:
        name, matches, error = future.result()
        if error is not None:
            self.result.problems.append(f"{name}: cannot read: {error}")
        elif not matches:
            self.result.mismatched.append(name)


_Outcome = tuple[str, bool, str | None]  # (manifest name, hash matches, read error)


def _rehash(real_root: str, name: str, on_disk: str, digest: str) -> _Outcome:
    """Runs in a worker thread; touches nothing shared."""
    try:
        return name, _hash_file(real_root, on_disk) == digest, None
    except OSError as exc:
        return name, False, str(exc)
