"""What the catalog shows, as plain values: files, records, and the groups that own them.

A *group* is what gets its own pages (a Spectrum organization, an OnPremise product, beer,
restaurant or menu item, a URL job); a *record* is one content record or asset inside it (the
folder holding its ``asset.json``). Both are derived from the state's item keys alone, which
are built from sanitised identifiers, so the same key always lands in the same place.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

# Worst first: a record shows the worst state among its files.
STATES = ("failed", "pending", "gone", "complete")
OWNER_DOCS = {"products": "product", "beers": "beer", "restaurants": "restaurant",
              "menu_items": "menu_item"}
KIND_TITLES = {"products": "Product", "beers": "Beer", "restaurants": "Restaurant",
               "menu_items": "Menu item"}


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One state row: a payload file or a record document."""

    key: str
    kind: str  # 'file' or 'doc'
    path: str | None  # relative to data/ (None when never archived)
    size: int | None
    sha256: str | None
    status: str
    error: str | None

    @property
    def name(self) -> str:
        return (self.path or self.key).rpartition("/")[2]

    @property
    def format(self) -> str:
        """The lower-case extension without its dot (as PurePosixPath.suffix finds it, with
        string operations: this runs for every file), or 'file' when there is none."""
        stem, dot, suffix = self.name.rpartition(".")
        return suffix.lower() if dot and stem.strip(".") and suffix else "file"

    @property
    def archived(self) -> bool:
        return self.path is not None and self.status in ("complete", "gone")


@dataclass(slots=True)
class Record:
    """One record with its files, its document's key fields, and its replaced versions."""

    key: str
    group: str
    files: list[FileEntry] = field(default_factory=list)
    doc: FileEntry | None = None
    name: str = ""
    reference: str = ""
    ident: str = ""
    fields: list[tuple[str, str]] = field(default_factory=list)
    history: list[str] = field(default_factory=list)  # keys under .assetvault/history/

    @property
    def state(self) -> str:
        states = {f.status for f in self.files} or ({self.doc.status} if self.doc else set())
        return next((s for s in STATES if s in states), "complete")

    @property
    def formats(self) -> list[str]:
        return sorted({f.format for f in self.files})

    @property
    def anchor(self) -> str:
        return "r-" + digest(self.key)


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """A group as the listing of groups shows it."""

    key: str
    title: str
    first_page: str
    records: int
    states: tuple[tuple[str, int], ...]


def digest(text: str) -> str:
    """A short stable name for a key: file names and anchors never carry network text."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def split_key(key: str) -> tuple[str, str]:
    """(group, record) of an item key."""
    parts = key.split("/")
    if parts[0] in ("spectrum", "onpremise") and len(parts) >= 5:
        return "/".join(parts[:3]), "/".join(parts[:4])
    if parts[0] == "onpremise" and len(parts) == 4:  # an owner's own record (product.json)
        return "/".join(parts[:3]), key
    if parts[0] == "urls" and len(parts) >= 3:
        return "/".join(parts[:2]), key
    return (parts[0] if len(parts) > 1 else "other"), key


def group_title(group: str, owner_name: str | None) -> str:
    """How a group is named on its pages (network text: escaped where it is written)."""
    parts = group.split("/")
    if parts[0] == "spectrum" and len(parts) == 3:
        return f"Organization {parts[2]} ({parts[1]})"
    if parts[0] == "onpremise" and len(parts) == 3:
        title = f"{KIND_TITLES.get(parts[1], parts[1])} {parts[2]}"
        return f"{title}: {owner_name}" if owner_name else title
    if parts[0] == "urls" and len(parts) == 2:
        return f"URL job {parts[1]}"
    return group


def owner_doc(group: str) -> str | None:
    """The data/ path of an OnPremise owner's own record (``product.json``), if any."""
    parts = group.split("/")
    if parts[0] == "onpremise" and len(parts) == 3 and parts[1] in OWNER_DOCS:
        return f"{group}/{OWNER_DOCS[parts[1]]}.json"
    return None
