"""The storage seam: every byte that reaches an archive goes through a :class:`Storage`.

Keys are ``/``-separated paths relative to the archive's root (``data/...``, ``bagit.txt``,
``.assetvault/history/...``), the same under a folder and under an object-store prefix. The
interface asks nothing an object store lacks: no rename, no hard link, no folder, no append.
Each write makes one whole object appear at once or not at all; nothing is ever deleted but a
tag file that is about to be rewritten. A local folder is the first implementation; what only
a file system can do (a rename, a link, a folder made once) stays inside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import msgspec

DATA = "data/"
STATE = ".assetvault/"
HISTORY = STATE + "history/"
SNAPSHOT = STATE + "state.sqlite"  # an object store's copy of the run's state
MARKER = STATE + "archive.json"  # written first into an empty prefix: "this is an archive"
REPORTS = STATE + "reports/"


class UnsafeKeyError(ValueError):
    """A key that would be written outside its place (a folder that resolves elsewhere)."""


class StorageError(OSError):
    """The store failed a call after its own retries (5xx, timeouts, throttling)."""


class Meta(msgspec.Struct, frozen=True):
    """Provenance stored beside a payload object where the store keeps metadata (SPEC 7):
    enough for a machine without local state to tell what is complete from a listing."""

    sha256: str
    url: str  # redacted
    version: str | None = None
    key: str = ""  # the item's key and job: enough to record it again from a listing
    job: str = ""
    kind: str = ""  # file or doc (an asset.json)


class Stored(msgspec.Struct, frozen=True):
    """One object as a listing sees it."""

    key: str
    size: int


class Upload(Protocol):
    """An object being written: invisible at its key until ``commit``, gone after ``abort``
    (a temporary file renamed into place, or a multipart upload completed or aborted)."""

    def write(self, data: bytes) -> None: ...

    def commit(self, meta: Meta | None = None) -> None:
        """Make the bytes written the object at the key, whole, at once."""
        ...

    def abort(self) -> None:
        """Drop what was written; the key keeps what it had."""
        ...


class Stream(Protocol):
    """An object written while its bytes arrive (an upload in parts): invisible at its key
    until ``commit``, nothing left after an ``abort`` before it (what a killed process leaves,
    the next run's ``sweep`` removes). Its metadata but the SHA-256 is set when it starts;
    ``commit`` adds that."""

    async def write(self, data: bytes | bytearray | memoryview) -> None: ...

    async def commit(self, meta: Meta) -> None:
        """Make the bytes written the object at the key, whole, carrying ``meta``."""
        ...

    async def abort(self) -> None:
        """Drop what was written (never raises); the key keeps what it had."""
        ...


class Storage(Protocol):
    """The bytes of one archive. Blocking calls: the run makes them from worker threads,
    except a ``size`` per item on a re-run, which a local folder answers from a ``stat``."""

    @property
    def location(self) -> str:
        """The archive as a user named it, for messages."""
        ...

    @property
    def whole_up_to(self) -> int:
        """Bodies up to this many bytes are best read whole into memory and handed over with
        ``put_bytes``; larger ones stream to a local partial file (the resume copy) first."""
        ...

    def where(self, key: str) -> str:
        """How a user names the object at ``key`` (a path, a URL)."""
        ...

    def size(self, key: str) -> int | None:
        """The size of the object at ``key``; None if there is none (or not a plain file)."""
        ...

    def metadata(self, key: str) -> dict[str, str]:
        """The provenance stored with an object (as written from :class:`Meta`); empty where
        the store keeps none (a local folder)."""
        ...

    def read(self, key: str) -> bytes:
        """A whole (small) object; FileNotFoundError if there is none."""
        ...

    def blocks(self, key: str) -> Iterator[bytes]:
        """An object's bytes, a block at a time (for hashing without holding it whole)."""
        ...

    def list(self, prefix: str) -> Iterator[Stored]:
        """Every plain object whose key starts with ``prefix`` (a folder: ends with ``/``), in
        no particular order."""
        ...

    def put_file(self, key: str, source: Path, meta: Meta | None = None) -> None:
        """Make the finished local file ``source`` the object at ``key``, whole; ``source``
        is consumed (renamed or uploaded, then gone)."""
        ...

    def put_bytes(self, key: str, body: bytes, meta: Meta | None = None) -> None:
        """Make ``body`` the object at ``key``, whole."""
        ...

    @property
    def takes_new(self) -> bool:
        """``put_new`` may place an object (else it always answers False)."""
        ...

    def put_new(self, key: str, body: bytes, meta: Meta | None = None) -> bool:
        """Make ``body`` the object at ``key``, whole, only if nothing is there: True if it
        was; False if something is there or the store cannot place only a new object in one
        step (the caller then keeps what is there and uses ``put_bytes``)."""
        ...

    def upload(self, key: str, *, durable: bool = False) -> Upload:
        """Start writing the object at ``key`` (``durable``: on stable storage once committed,
        for the bag's tag files)."""
        ...

    def stream(self, key: str, meta: Meta, size: int) -> Stream | None:
        """Start writing the object at ``key`` (``size`` bytes) while its bytes arrive; None
        where the store gains nothing from that (a local folder renames its partial file into
        place anyway) or cannot finish such an object."""
        ...

    def stamp(self, key: str, meta: Meta, size: int) -> None:
        """Set the full provenance on an object written without its digest (a streamed
        upload); nothing where the store keeps no metadata."""
        ...

    def copy(self, source: str, key: str) -> None:
        """Make the object at ``key`` a copy of the one at ``source`` (with its metadata)."""
        ...

    def retract(self, key: str) -> None:
        """Remove a tag file at the root before it is rewritten (never anything else)."""
        ...

    def remove(self, key: str) -> None:
        """Remove a payload object (under ``data/``, never anything else) whose bytes the
        history already keeps: its record names another file in its place. Nothing if it is
        not there."""
        ...

    def sweep(self) -> None:
        """Remove what a killed writer left half-written (temporary files, incomplete
        multipart uploads); only while no other writer uses the archive."""
        ...
