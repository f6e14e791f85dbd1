"""The archive as a BagIt bag (RFC 8493): writing the tag files; the public face of bag code.

``write_bag`` writes ``bagit.txt``, ``manifest-sha256.txt``, ``bag-info.txt`` and
``tagmanifest-sha256.txt`` at the bag root, through the archive's storage, from a stream of
:class:`PayloadFile`, never held in memory: memory does not grow with the number of entries.
The payload under ``data/`` is never touched, and anything else at the root (``.assetvault/``)
is neither payload nor listed.

Reading and verification live in :mod:`assetvault.bag.verify`; they are re-exported here.

Known interoperability limit: RFC 8493 §2.1.3 requires ``%`` in manifest paths to be written
``%25``, and this module does so, but bagit-python 1.9 (``bagit.py --validate``) never decodes
``%25`` (LibraryOfCongress/bagit-python#157), nor more than two ``%0A``/``%0D`` per path, and
it strips trailing whitespace from manifest lines. Names without ``%``, CR, LF and trailing
whitespace read the same under both rules: payload names must avoid them for
``bagit.py --validate`` to accept the archive.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import PurePosixPath

import msgspec

from assetvault.bag.verify import (
    BAG_INFO_TXT,
    BAGIT_TXT,
    MANIFEST,
    PAYLOAD_DIR,
    TAGMANIFEST,
    VerifyResult,
    decode_path,
    is_safe_payload_path,
    verify_bag,
)
from assetvault.storage import Storage, Upload

__all__ = [
    "TAG_FILES",
    "PayloadFile",
    "VerifyResult",
    "decode_path",
    "encode_path",
    "manifest_line",
    "verify_bag",
    "write_bag",
]

BAGIT_TXT_TEXT = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
_ENCODE = str.maketrans({"%": "%25", "\r": "%0D", "\n": "%0A"})
_SHA256 = re.compile(r"[0-9a-f]{64}")
_RESERVED = frozenset({"Bag-Software-Agent", "Bagging-Date", "Payload-Oxum"})
TAG_FILES = (BAGIT_TXT, MANIFEST, BAG_INFO_TXT, TAGMANIFEST)


class PayloadFile(msgspec.Struct, frozen=True):
    """One payload file as the manifest records it."""

    path: PurePosixPath  # relative to data/
    sha256: str  # lower-case hex
    size: int


def encode_path(p: str) -> str:
    """Percent-encode CR, LF and ``%`` (and only those), as RFC 8493 §2.1.3 requires."""
    # The test is a fraction of translate's cost, and almost no name needs encoding.
    return p.translate(_ENCODE) if "%" in p or "\r" in p or "\n" in p else p


def manifest_line(path: PurePosixPath, sha256: str) -> str:
    """``HASH  data/PATH`` for a payload path relative to ``data/``, without the newline."""
    return _entry(sha256, str(path))


def _entry(sha256: str, path: str) -> str:
    return f"{sha256}  {PAYLOAD_DIR}/{encode_path(path)}"


def write_bag(
    storage: Storage,
    files: Iterable[PayloadFile],
    *,
    agent: str,
    bagging_date: datetime.date | None = None,
    info: Mapping[str, str] | None = None,
) -> None:
    """Write the bag's tag files into ``storage`` for ``files`` (in the order given: pass them
    sorted).

    Every tag file is uploaded uncommitted first, then committed (see :func:`_swap_in`).
    Raises ValueError for an unsafe or duplicated path, a malformed digest or size, or an
    ``info`` label or value that cannot be written as one tag line; nothing is replaced then.
    """
    header = _tag_line("Bag-Software-Agent", agent)
    extra_lines = "".join(
        _tag_line(label, value, extra=True) for label, value in (info or {}).items()
    )
    storage.sweep()
    oxum = _Oxum()
    staged = [_stage(storage, BAGIT_TXT, [BAGIT_TXT_TEXT.encode()])]
    try:
        staged.append(_stage(storage, MANIFEST, _manifest_chunks(files, oxum)))
        date = (bagging_date or datetime.date.today()).isoformat()
        bag_info = f"{header}Bagging-Date: {date}\nPayload-Oxum: {oxum}\n{extra_lines}"
        staged.append(_stage(storage, BAG_INFO_TXT, [bag_info.encode()]))
        staged.append(_stage(storage, TAGMANIFEST, [_tagmanifest_text(staged).encode()]))
    except BaseException:
        for upload, _, _ in staged:
            upload.abort()
        raise
    _swap_in(storage, staged)


# -- content ---------------------------------------------------------------------------------


class _Oxum:
    """Payload-Oxum accumulated while the manifest streams past."""

    def __init__(self) -> None:
        self.octets = 0
        self.count = 0

    def __str__(self) -> str:
        return f"{self.octets}.{self.count}"


def _manifest_chunks(files: Iterable[PayloadFile], oxum: _Oxum) -> Iterator[bytes]:
    previous = ""
    for payload in files:
        path = str(payload.path)
        _check_payload(payload, path)
        if path == previous:
            # Adjacent only (callers sort): bagit-python rejects a bag listing a path twice.
            raise ValueError(f"payload path listed twice: {path}")
        previous = path
        oxum.octets += payload.size
        oxum.count += 1
        yield (_entry(payload.sha256, path) + "\n").encode()


def _check_payload(payload: PayloadFile, path: str) -> None:
    if not is_safe_payload_path(f"{PAYLOAD_DIR}/{path}"):  # also refuses "/x" ("data//x")
        raise ValueError(f"unsafe payload path: {path!r}")
    if not _SHA256.fullmatch(payload.sha256):
        raise ValueError(f"not a lower-case hex SHA-256 for {payload.path}: {payload.sha256!r}")
    if payload.size < 0:
        raise ValueError(f"negative size for {payload.path}")


def _tag_line(label: str, value: str, *, extra: bool = False) -> str:
    if extra and label in _RESERVED:
        raise ValueError(f"bag-info label {label!r} is written by write_bag itself")
    if not label or label != label.strip() or ":" in label or _has_break(label):
        raise ValueError(f"invalid bag-info label: {label!r}")
    if _has_break(value):
        # Kept on one line rather than folded: bagit-python reads a folded value back with
        # the line break inside it, so folding would not round-trip.
        raise ValueError(f"bag-info value for {label!r} contains a line break")
    return f"{label}: {value.strip()}\n"


def _has_break(text: str) -> bool:
    return any(c in text for c in "\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029")


def _tagmanifest_text(staged: list[tuple[Upload, str, str]]) -> str:
    entries = sorted((name, digest) for _, name, digest in staged)
    return "".join(f"{digest}  {name}\n" for name, digest in entries)


# -- files -----------------------------------------------------------------------------------

WRITE_BYTES = 1 << 20  # manifest lines gathered per write: one call per line cost a syscall each


def _stage(storage: Storage, name: str, chunks: Iterable[bytes]) -> tuple[Upload, str, str]:
    """Upload ``chunks`` as ``name``, uncommitted; return the upload, the name and its SHA-256."""
    digest = hashlib.sha256()
    upload = storage.upload(name, durable=True)
    try:
        pending: list[bytes] = []
        size = 0
        for chunk in chunks:
            pending.append(chunk)
            size += len(chunk)
            if size >= WRITE_BYTES:
                _send(upload, digest, pending)
                pending, size = [], 0
        _send(upload, digest, pending)
    except BaseException:
        upload.abort()
        raise
    return upload, name, digest.hexdigest()


def _send(upload: Upload, digest: hashlib._Hash, pending: list[bytes]) -> None:
    if pending:
        block = b"".join(pending)
        digest.update(block)
        upload.write(block)


def _swap_in(storage: Storage, staged: list[tuple[Upload, str, str]]) -> None:
    """Commit the staged tag files, in this order:

    1. the old tag manifest is removed: from here until step 5 the bag has none, which
       RFC 8493 allows, rather than one that is wrong about the files being replaced;
    2. ``bagit.txt``, 3. ``manifest-sha256.txt``, 4. ``bag-info.txt`` (its Payload-Oxum
       describes the new manifest);
    5. ``tagmanifest-sha256.txt``, which covers the three above, last.

    Staging first keeps the window between steps 1 and 5 to a few commits, however large the
    manifest. A crash in it leaves the payload, manifest and Payload-Oxum of either the old
    or the new state and the next run's ``write_bag`` rewrites all of them.
    """
    storage.retract(TAGMANIFEST)
    for upload, _, _ in staged:  # bagit.txt, manifest, bag-info.txt, tag manifest
        upload.commit()
