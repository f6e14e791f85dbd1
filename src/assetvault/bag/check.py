"""Reading a BagIt bag (RFC 8493): the format's primitives, and :func:`check_bag`, the whole
check written once against a :class:`BagReader`.

The readers are in :mod:`assetvault.bag.verify`: a folder of this machine (``verify_bag``) and
any archive ``Storage`` (``verify_storage``, for object stores). :mod:`assetvault.bag.write`
writes bags; the imports point one way (``write -> verify -> check``) so that reading and
writing share one definition of the format.

Verification collects every problem before returning, bagit-python style: all missing, extra
and mismatched files are reported together, never the first one alone. Memory does not grow
with the manifest: it is parsed line by line as its blocks arrive.
"""

from __future__ import annotations

import collections
import concurrent.futures
import posixpath
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

import msgspec
from msgspec import field

BAGIT_TXT = "bagit.txt"
BAG_INFO_TXT = "bag-info.txt"
MANIFEST = "manifest-sha256.txt"
TAGMANIFEST = "tagmanifest-sha256.txt"
PAYLOAD_DIR = "data"

_ENTRY = re.compile(r"([0-9A-Fa-f]{64})[ \t]+(.+)")
_OXUM = re.compile(r"(\d+)\.(\d+)")
_VERSION = re.compile(r"\d+\.\d+")
_DECODE = re.compile(r"%(25|0[AaDd])")
_DECODED = {"25": "%", "0A": "\n", "0D": "\r"}
_BOM = b"\xef\xbb\xbf"

Sizes = Callable[[str], int | None]  # "data/..." -> the size it should have, None: unknown
Digests = Callable[[str], str | None]  # a payload key -> its stored SHA-256, None: unknown


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


class VerifyResult(msgspec.Struct):
    """Everything wrong with a bag; payload paths are in ``data/...`` form, sorted."""

    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    checked: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.mismatched or self.problems)



class BagReader(Protocol):
    """Where a bag's bytes come from, by key (``bagit.txt``, ``data/...``). Every method may
    raise OSError for a file it cannot read (FileNotFoundError: there is none)."""

    @property
    def location(self) -> str:
        """The bag as a user named it, for messages."""
        ...

    def read(self, key: str) -> bytes:
        """A whole (small) tag file."""
        ...

    def blocks(self, key: str) -> Iterator[bytes]:
        """A file's bytes, a block at a time (the manifest: parsed as it streams)."""
        ...

    def payload(self, result: VerifyResult) -> dict[str, int]:
        """Every payload file's key and size; what stands in the way goes into ``result``."""
        ...

    def tag_digest(self, name: str) -> str | None:
        """The SHA-256 of a tag file; None if ``name`` leads outside the bag."""
        ...

    def digest(self, key: str) -> str:
        """The SHA-256 of a payload file; called from worker threads."""
        ...

    def readable(self, key: str) -> bool:
        """False for a payload file that must not be read (it resolves outside the bag)."""
        ...


def check_bag(
    reader: BagReader,
    *,
    fast: bool = False,
    sizes: Sizes | None = None,
    digests: Digests | None = None,
    workers: int = 2,
) -> VerifyResult:
    """Check the bag ``reader`` reads against its manifests; report every problem found.

    Full mode re-hashes each payload file in a pool of ``workers`` threads. Fast mode does
    not hash: it checks existence, extras, Payload-Oxum and, given ``sizes``, each file's
    size against ``sizes("data/...")``; given ``digests``, each file's stored SHA-256
    against the manifest's (``None`` from either means unknown: not checked).
    """
    result = VerifyResult()
    _check_bagit_txt(reader, result)
    oxum = _read_oxum(reader, result)
    _check_tagmanifest(reader, result)
    present = reader.payload(result)
    _check_oxum(oxum, present, result)
    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        mode = _Mode(fast, sizes, digests, window=8 * max(1, workers))
        checker = _PayloadChecker(reader, present, result, pool, mode)
        for path, digest in _manifest_entries(reader, MANIFEST, result, payload=True):
            checker.entry(path, digest)
        checker.finish()
    for found in (result.missing, result.extra, result.mismatched):
        found.sort()
    return result


# -- bagit.txt, bag-info.txt, tagmanifest ------------------------------------------------


def _check_bagit_txt(reader: BagReader, result: VerifyResult) -> None:
    try:
        raw = reader.read(BAGIT_TXT)
    except OSError:
        result.problems.append(f"{BAGIT_TXT} is missing: {reader.location} is not a bag")
        return
    if raw.startswith(_BOM):
        result.problems.append(f"{BAGIT_TXT} starts with a byte-order mark (RFC 8493 §2.1.1)")
    tags = dict(parse_tags(raw.decode("utf-8", "replace").lstrip("\ufeff"))[0])
    if not _VERSION.fullmatch(tags.get("BagIt-Version", "")):
        result.problems.append(f"{BAGIT_TXT}: no valid BagIt-Version")
    if tags.get("Tag-File-Character-Encoding", "").upper() not in ("UTF-8", "UTF8"):
        # Everything here is read as UTF-8, so another encoding cannot be checked honestly.
        result.problems.append(f"{BAGIT_TXT}: Tag-File-Character-Encoding is not UTF-8")


def _read_oxum(reader: BagReader, result: VerifyResult) -> tuple[int, int] | None:
    try:
        text = reader.read(BAG_INFO_TXT).decode("utf-8", "replace")
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
    oxum: tuple[int, int] | None, present: dict[str, int], result: VerifyResult
) -> None:
    found = (sum(present.values()), len(present))
    if oxum is not None and oxum != found:
        result.problems.append(
            f"Payload-Oxum says {oxum[0]} bytes in {oxum[1]} files, "
            f"{PAYLOAD_DIR}/ has {found[0]} bytes in {found[1]} files"
        )


def _check_tagmanifest(reader: BagReader, result: VerifyResult) -> None:
    # The tag manifest is optional (RFC 8493 §2.2.1), and write_bag removes the old one just
    # before replacing the tag files, so its absence is not a problem; a wrong one is.
    for name, digest in _manifest_entries(reader, TAGMANIFEST, result, payload=False):
        try:
            found = reader.tag_digest(name)
        except OSError as exc:
            result.problems.append(f"{name} (listed in {TAGMANIFEST}): {exc}")
            continue
        if found is None:
            result.problems.append(f"{name} (listed in {TAGMANIFEST}) is outside the bag")
        elif found != digest:
            result.problems.append(f"{name} does not match {TAGMANIFEST}")


# -- manifests -------------------------------------------------------------------------------


def _manifest_entries(
    reader: BagReader, name: str, result: VerifyResult, *, payload: bool
) -> Iterator[tuple[str, str]]:
    """Yield ``(decoded path, lower-case digest)`` per valid line as the manifest streams in;
    report the others. No tag manifest is no problem; no payload manifest is one."""
    number = 0
    try:
        for number, raw in enumerate(split_lines(reader.blocks(name)), 1):
            entry = _parse_entry(raw, payload)
            if entry is None:
                result.problems.append(f"{name} line {number}: not a valid entry: {raw!r}")
            elif entry[0]:
                yield entry
    except FileNotFoundError:
        if number or payload:
            result.problems.append(f"{name} is missing" if not number else f"{name} vanished")
    except OSError as exc:
        result.problems.append(f"{name}: cannot read: {exc}")


def split_lines(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a stream of blocks, without their LF; memory holds one block and one line.

    Split on LF only: CR and LF inside names are percent-encoded, so a bare CR can only be the
    first half of a CRLF line ending (and is stripped with it).
    """
    pending: list[bytes] = []  # the start of a line that runs on into the next block
    for block in blocks:
        *lines, last = block.split(b"\n")
        if lines:
            if pending:
                lines[0] = b"".join([*pending, lines[0]])
                pending.clear()
            yield from lines
        if last:
            pending.append(last)
    if pending:
        yield b"".join(pending)


def _parse_entry(raw: bytes, payload: bool) -> tuple[str, str] | None:
    """``("", "")`` for a blank line, None for a bad one, else ``(path, digest)``."""
    try:
        line = raw.rstrip(b"\r").decode("utf-8")
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


class _Mode(msgspec.Struct, frozen=True):
    fast: bool
    sizes: Sizes | None
    digests: Digests | None
    window: int  # how many files may be queued for the workers at once


class _PayloadChecker:
    """Matches manifest entries (streamed) against the payload found and checks each.

    Memory stays at one set-of-paths: an entry moves from ``present`` to ``seen`` when
    matched, so what remains in ``present`` at the end is exactly the extras.
    """

    def __init__(
        self,
        reader: BagReader,
        present: dict[str, int],
        result: VerifyResult,
        pool: concurrent.futures.Executor,
        mode: _Mode,
    ) -> None:
        self.reader, self.present, self.result, self.pool = reader, present, result, pool
        self.mode = mode
        self.seen: set[str] = set()
        self.unmatched: list[tuple[str, str]] = []
        self.pending: collections.deque[concurrent.futures.Future[_Outcome]] = collections.deque()

    def entry(self, path: str, digest: str) -> None:
        if path in self.present:
            self.seen.add(path)
            self._check(path, path, digest, self.present.pop(path))
        elif path in self.seen:
            self.result.problems.append(f"{MANIFEST}: {path} is listed more than once")
        else:
            self.unmatched.append((path, digest))

    def finish(self) -> None:
        self._pair_normalized()
        while self.pending:
            self._collect(self.pending.popleft())
        self.result.extra.extend(self.present)
        self.present.clear()

    def _pair_normalized(self) -> None:
        # A bag copied through a filesystem that renormalises Unicode (HFS+: NFD) still names
        # the same files; bagit-python matches them this way too. Only leftovers pay for it.
        if not self.unmatched:
            return
        by_nfc = {unicodedata.normalize("NFC", p): p for p in self.present}
        for path, digest in self.unmatched:
            twin = by_nfc.pop(unicodedata.normalize("NFC", path), None)
            if twin is None:
                self.result.missing.append(path)
            else:
                self._check(path, twin, digest, self.present.pop(twin))

    def _check(self, name: str, key: str, digest: str, size: int) -> None:
        self.result.checked += 1
        mode = self.mode
        if not mode.fast:
            if self.reader.readable(key):
                self._submit(self.reader.digest, name, key, digest)
            else:
                self.result.problems.append(f"{name}: resolves outside the bag, not read")
            return
        expected = mode.sizes(name) if mode.sizes else None
        if expected is not None and expected != size:
            self.result.mismatched.append(name)
        elif mode.digests is not None:
            self._submit(mode.digests, name, key, digest)

    def _submit(self, digest_of: Digests, name: str, key: str, digest: str) -> None:
        # A bounded window of futures: memory stays flat however many files the bag holds.
        if len(self.pending) >= self.mode.window:
            self._collect(self.pending.popleft())
        self.pending.append(self.pool.submit(_compare, digest_of, name, key, digest))

    def _collect(self, future: concurrent.futures.Future[_Outcome]) -> None:
        name, matches, error = future.result()
        if error is not None:
            self.result.problems.append(f"{name}: cannot read: {error}")
        elif not matches:
            self.result.mismatched.append(name)


_Outcome = tuple[str, bool, str | None]  # (manifest name, digest matches, read error)


def _compare(digest_of: Digests, name: str, key: str, digest: str) -> _Outcome:
    """Runs in a worker thread; touches nothing shared. A digest of None is unknown."""
    try:
        found = digest_of(key)
    except OSError as exc:
        return name, False, str(exc)
    return name, found is None or found.lower() == digest, None
