"""A run's local working state (SQLite, journal, partial files, lock), and a local archive's
folders: payload in ``data/``, the working state in ``.assetvault/`` beside it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATE_DIR = ".assetvault"


@dataclass(frozen=True, slots=True)
class Workspace:
    """The local folder a run works in: inside a local archive, or ``--state-dir`` (a cache
    folder by default) for an object-store archive."""

    folder: Path

    @property
    def database(self) -> Path:
        return self.folder / "state.sqlite"

    @property
    def partial(self) -> Path:
        return self.folder / "partial"

    @property
    def journal(self) -> Path:
        return self.folder / "journal"

    @property
    def lock(self) -> Path:
        return self.folder / "lock"

    def create(self) -> None:
        """Make the folders a run writes into."""
        self.partial.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True, slots=True)
class ArchivePaths(Workspace):
    """A local archive: its root, and the workspace inside it."""

    root: Path = Path()

    def __init__(self, root: Path) -> None:
        object.__setattr__(self, "root", Path(root))
        object.__setattr__(self, "folder", Path(root) / STATE_DIR)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def state(self) -> Path:
        return self.folder

    @property
    def history(self) -> Path:
        return self.folder / "history"

    @property
    def reports(self) -> Path:
        return self.folder / "reports"

    def create(self) -> None:
        """Make the folders a run writes into (``data/`` too: an empty bag still has one)."""
        for folder in (self.data, self.partial, self.history, self.reports):
            folder.mkdir(parents=True, exist_ok=True)
