"""Values that cross module boundaries: what sources find and what the engine makes of it.

A source turns API records into a stream of :data:`Entry` values:

- :class:`Item`: one file to fetch into the payload;
- :class:`Document`: one ``asset.json`` to write (every listed record gets one);
- :class:`Pending`: a file the API says is not ready yet (OnPremise ``processed: false``);
- :class:`ListingFailure`: one organization's or product's listing failed; the job goes on;
- :class:`KnownDocument` and :class:`PageMemo`: a remembered listing page (``sources.memo``).

No I/O here.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple, TypeAlias

import msgspec
from msgspec import field


class Item(msgspec.Struct, frozen=True, gc=False):
    """One file to fetch. ``path`` is relative to ``data/``, ``/``-separated and already safe
    (see layout); plain text, as pathlib objects cost a re-run ~7 µs a record."""

    key: str
    job: str
    url: str
    path: str
    expected_size: int | None = None
    expected_md5: str | None = None  # lower-case hex, from the API record
    upstream_version: str | None = None  # lastModification / updated_at: unchanged means skip
    etag_is_md5: bool = False  # the host's ETag is the content's MD5 when it is 32 hex digits
    add_extension: bool = False  # path has no extension yet: take one from the Content-Type


class Document(msgspec.Struct, frozen=True):
    """An ``asset.json`` to write: the API's record as JSON, secrets redacted."""

    key: str
    job: str
    path: str  # relative to data/, like Item.path
    body: bytes
    upstream_version: str | None = None


class Pending(msgspec.Struct, frozen=True):
    """A file that exists upstream but is not ready; it is tried again on the next run."""

    key: str
    job: str
    url: str  # redacted
    reason: str


class ListingFailure(msgspec.Struct, frozen=True):
    """A listing (one organization, one product) failed; its records are unknown this run."""

    job: str
    key: str
    url: str  # redacted
    error: str


class KnownDocument(msgspec.Struct, frozen=True):
    """An ``asset.json`` whose bytes are known from a remembered listing page: its hash and
    size, not its body. ``rebuild`` makes the Document when it must be written after all."""

    key: str
    job: str
    path: str
    sha256: str
    size: int
    upstream_version: str | None
    rebuild: Callable[[], Document]


class PageMemo(msgspec.Struct, frozen=True):
    """A listing page's entries, to remember under ``key`` (see sources.memo); empty
    ``entries``: a remembered page was listed again."""

    key: str
    job: str
    entries: bytes


class Seen(msgspec.Struct, frozen=True):
    """Keys of items and ``asset.json`` files found archived and unchanged: the writer marks
    them seen in the state (a re-run is mostly these, so they travel as one list)."""

    keys: list[str]


Entry = Item | Document | KnownDocument | Pending | ListingFailure | PageMemo


# A JSON value as an API sends it: what sources map from, never trusted to have a shape.
Json: TypeAlias = "bool | int | float | str | list[Json] | dict[str, Json] | None"


class Status(enum.StrEnum):
    """What became of an item in one run (the state's ``outcome`` column)."""

    DOWNLOADED = "downloaded"
    UP_TO_DATE = "up_to_date"
    PENDING = "pending"
    FAILED = "failed"
    RECOVERED = "recovered"  # placed by a run that died before recording it; the next one did


class State(enum.StrEnum):
    """What the archive holds of an item across runs (the state's ``status`` column)."""

    COMPLETE = "complete"  # in data/ and in the bag
    FAILED = "failed"  # never archived
    PENDING = "pending"  # not ready upstream yet
    GONE = "gone"  # vanished upstream; kept in data/
    # Its record names another file in its place (an original whose extension changed): the
    # bytes are in the history, no longer in data/. RETIRING until they have left data/.
    RETIRING = "retiring"
    REPLACED = "replaced"


ARCHIVED = frozenset({State.COMPLETE, State.GONE})  # the states whose bytes are in data/


class Kind(enum.StrEnum):
    """What a state row stands for."""

    FILE = "file"
    DOC = "doc"  # an asset.json (or an owner's record)


class Row(NamedTuple):
    """What the store knows of one item (a tuple: a re-run makes one per entry)."""

    key: str
    url: str | None
    path: str | None
    size: int | None
    sha256: str | None
    version: str | None
    status: str  # a State's value, as SQLite gives it back


class DocRecord(msgspec.Struct, frozen=True, gc=False):
    """An asset.json written (or confirmed) in this run."""

    key: str
    job: str
    path: str
    size: int
    sha256: str
    version: str | None
    written: bool
    error: str | None = None  # not written: the reason (it is not recorded either)


class Outcome(msgspec.Struct, frozen=True, gc=False):
    """The result of one item (or pending entry) in one run."""

    key: str
    job: str
    status: Status
    url: str  # redacted
    path: str | None = None
    size: int = 0
    sha256: str | None = None
    error: str | None = None
    upstream_version: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    fetched_bytes: int = 0  # bytes moved over the network for it in this run


class JobStats(msgspec.Struct):
    """Counters for one job in one run (the summary table and the report)."""

    name: str
    found: int = 0
    downloaded: int = 0
    up_to_date: int = 0
    pending: int = 0
    failed: int = 0
    bytes: int = 0
    seconds: float = 0.0
    listing_failures: int = 0
    gone: int = 0  # archived before, no longer listed upstream (kept, marked in state)
    fatal: str | None = None  # set when the job stopped early (credentials, ...)
    credentials_refused: bool = False

    @property
    def failed_total(self) -> int:
        """Failed files and failed listings: the "failed" of the summary and the report."""
        return self.failed + self.listing_failures

    def count(self, outcome: Outcome) -> None:
        """Add one outcome to the counters."""
        if outcome.status is Status.DOWNLOADED:
            self.downloaded += 1
        elif outcome.status is Status.UP_TO_DATE:
            self.up_to_date += 1
        elif outcome.status is Status.PENDING:
            self.pending += 1
        else:
            self.failed += 1
        self.bytes += outcome.fetched_bytes


class Failure(msgspec.Struct, frozen=True):
    """One line of the report's ``failures``: an item or a listing."""

    job: str
    key: str
    url: str
    error: str


class RunResult(msgspec.Struct):
    """What a run did, for the summary, the report and the exit code."""

    started: datetime
    finished: datetime | None = None
    stats: list[JobStats] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    interrupted: bool = False
    fatal: str | None = None
    report_path: str | None = None  # where the user finds it: a path or a URL
    planned_files: int = 0
    planned_bytes: int = 0
    planned_unknown: int = 0
    # A cluster run: the CPU seconds each worker spent on it (for sizing machines).
    worker_cpu: dict[str, float] | None = None

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        if any(s.credentials_refused for s in self.stats):
            return 2
        if self.fatal or self.failures or any(s.fatal or s.failed for s in self.stats):
            return 1
        return 0


Decided = Outcome | DocRecord | PageMemo | Seen  # what the planner and workers hand the writer
