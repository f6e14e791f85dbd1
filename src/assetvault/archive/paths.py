"""A local archive's folders: payload in ``data/``, the run's working state in ``.assetvault/``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATE_DIR = ".assetvault"


@dataclass(frozen=True, slots=True)
class ArchivePaths:
    """The folders of one archive root."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def state(self) -> Path:
        return self.root / STATE_DIR

    @property
    def database(self) -> Path:
        return self.state / "state.sqlite"

    @property
    def partial(self) -> Path:
        return self.state / "partial"

    @property
    def history(self) -> Path:
        return self.state / "history"

    @property
    def reports(self) -> Path:
        return self.state / "reports"

    @property
    def journal(self) -> Path:
        return self.state / "journal"

    @property
    def lock(self) -> Path:
        return self.state / "lock"

    def create(self) -> None:
        """Make the folders a run writes into."""
        for folder in (self.data, self.partial, self.history, self.reports):
            folder.mkdir(parents=True, exist_ok=True)
