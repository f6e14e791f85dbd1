"""Remembered listing pages: an unchanged page's entries without decoding or mapping it again.

A re-run of a large archive spent most of its time turning records it had already seen into
the same entries as last time (about 50 µs a record in Python). A page's entries depend only
on the bytes of its records and on the job's mapping settings, so they are remembered under
the hash of both. When the same page comes back, its entries are read from the state instead:
items exactly as the mapping would make them, and each ``asset.json`` as its hash and size
(:class:`~assetvault.models.KnownDocument`), rebuilt from the page's bytes only when it has
to be written. The planner checks every entry against the state and the disk as usual, so a
remembered page never skips a missing or changed file.

A page is remembered only when it mapped to items and documents alone (no failure, no record
dropped as a repeat), holds none of the job's secrets, and none of its URLs carries a
credential (the state never stores one). The key covers the job's secrets (hashed with the
rest, never stored) and the code of the mapping itself, so a new token or a new version of
assetvault starts afresh. Pure functions; the state holds the bytes (``Store.page``).
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import msgspec

from .. import __version__
from ..models import Document, Entry, Item, KnownDocument
from ..redact import Redactor

MEMO_VERSION = 1  # bump when the mapping changes what it makes of a record


class PageLookup(Protocol):
    """Where remembered pages are read (the state database)."""

    def page(self, key: str) -> bytes | None: ...


class _Envelope(msgspec.Struct):
    """The parts of a listing page a memo needs: the records, unparsed."""

    contents: list[msgspec.Raw]
    error: msgspec.Raw | None = None  # only whether it is null matters


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_ENCODE = msgspec.json.Encoder()


def split_page(body: bytes | bytearray) -> list[msgspec.Raw] | None:
    """The raw records of a plain page (an object, ``error`` null, ``contents`` a list).

    None for anything else: the caller parses the page the ordinary way and reports it.
    """
    try:
        envelope = _ENVELOPE.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return envelope.contents if envelope.error is None else None


def fingerprint(*settings: object, secrets: Sequence[str] = ()) -> bytes:
    """What, besides the records, decides a page's entries: the settings, the secrets that
    are scrubbed from ``asset.json``, and the code that maps records."""
    digest = hashlib.sha256(_code_digest())
    digest.update(repr((MEMO_VERSION, __version__, *settings)).encode())
    for secret in sorted(secrets):
        digest.update(hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest())
    return digest.digest()


@functools.cache
def _code_digest() -> bytes:
    """The mapping's source code: a change to it must not recall entries the old code made."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    try:
        for source in (here / "_base.py", here / "spectrum.py", here / "memo.py",
                       here.parent / "layout.py", here.parent / "redact.py"):
            digest.update(source.read_bytes())
    except OSError:  # no sources to read (a frozen build): remember nothing across runs
        return os.urandom(32)
    return digest.digest()


def page_key(settings: bytes, records: Sequence[msgspec.Raw]) -> str:
    """The key of a page: the settings and its records' bytes, NUL-separated (a NUL byte is
    never part of a JSON text, so the records cannot run into each other)."""
    digest = hashlib.sha256(settings)
    digest.update(len(records).to_bytes(8, "big"))
    for index, record in enumerate(records):  # not joined: that copies the whole page
        digest.update(b"\0" if index else b"")
        digest.update(record)  # Raw is a buffer
    return digest.hexdigest()


class _ItemRow(msgspec.Struct, array_like=True, tag="i"):
    key: str
    path: str
    url: str
    version: str | None
    size: int | None
    md5: str | None
    etag_is_md5: bool
    add_extension: bool


class _DocRow(msgspec.Struct, array_like=True, tag="d"):
    key: str
    path: str
    sha256: str
    size: int
    version: str | None
    index: int  # of the record among the page's records


# Shapes checked by msgspec as it decodes: a damaged memo raises, it never half-decodes.
_MEMO = msgspec.json.Decoder(tuple[list[str], list[_ItemRow | _DocRow]])


def remember(identities: list[str], entries: Sequence[Entry],
             record_of: dict[str, int], redactor: Redactor) -> bytes | None:
    """The memo of a page mapped to ``entries``; None when it must not be remembered.

    ``record_of`` gives the index, among the page's records, of each document's record.
    """
    rows: list[_ItemRow | _DocRow] = []
    for entry in entries:
        if isinstance(entry, Item):
            if redactor.url(entry.url) != entry.url:  # a credential in it: not for the state
                return None
            rows.append(_ItemRow(entry.key, entry.path, entry.url, entry.upstream_version,
                                 entry.expected_size, entry.expected_md5, entry.etag_is_md5,
                                 entry.add_extension))
        elif isinstance(entry, Document):
            rows.append(_DocRow(entry.key, entry.path, hashlib.sha256(entry.body).hexdigest(),
                                len(entry.body), entry.upstream_version, record_of[entry.key]))
        else:
            return None
    return _ENCODE.encode((identities, rows))


def recall(memo: bytes, job: str, rebuild: Callable[[int, str, str | None], Document],
           records: int) -> tuple[list[str], list[Entry]]:
    """The identities and entries of a remembered page of ``records`` records.

    ``rebuild(i, path, version)`` makes the Document at ``path`` of the page's record ``i``
    from its bytes. Raises ValueError (or a msgspec error) for anything but a memo of this
    shape: a damaged one is a miss, never a crash or a wrong entry.
    """
    identities, rows = _MEMO.decode(memo)
    if len(identities) != records:
        raise ValueError("memo of another page")
    entries: list[Entry] = []
    documents = set()
    for row in rows:
        if isinstance(row, _ItemRow):
            entries.append(Item(row.key, job, row.url, row.path, row.size, row.md5,
                                row.version, row.etag_is_md5, row.add_extension))
        else:
            if not 0 <= row.index < records:
                raise ValueError("damaged memo")
            documents.add(row.index)
            entries.append(KnownDocument(row.key, job, row.path, row.sha256, row.size,
                                         row.version,
                                         _later(rebuild, row.index, row.path, row.version)))
    if len(documents) != records:  # every record has its asset.json
        raise ValueError("damaged memo")
    return identities, entries


def _later(rebuild: Callable[[int, str, str | None], Document], index: int, path: str,
           version: str | None) -> Callable[[], Document]:
    return lambda: rebuild(index, path, version)
