"""Progress for people: tqdm bars on a terminal, a plain line now and then otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ..models import Outcome, Status

LINE_EVERY = 10.0  # seconds between plain progress lines (cron and CI logs stay short)


class Progress:
    """Receives engine events; this base class shows nothing."""

    def add_found(self, n: int = 1) -> None:
        """More files were found."""

    def add_bytes(self, n: int) -> None:
        """Bytes arrived."""

    def done(self, outcome: Outcome) -> None:
        """An item finished, whatever became of it."""

    def up_to_date(self, n: int) -> None:
        """``n`` items were found archived and unchanged."""

    def close(self) -> None:
        """The run is over."""


class Counts(Progress):
    """Keeps the counters the visible kinds show."""

    def __init__(self) -> None:
        self.found = 0
        self.finished = 0
        self.failed = 0
        self.bytes = 0
        self.started = time.monotonic()

    def add_found(self, n: int = 1) -> None:
        self.found += n

    def add_bytes(self, n: int) -> None:
        self.bytes += n

    def done(self, outcome: Outcome) -> None:
        self.finished += 1
        if outcome.status is Status.FAILED:
            self.failed += 1

    def up_to_date(self, n: int) -> None:
        self.finished += n

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return (f"{self.finished}/{self.found} files done, {self.failed} failed, "
                f"{self.bytes / 1e6:.1f} MB at {self.bytes / 1e6 / elapsed:.1f} MB/s")


class Lines(Counts):
    """A plain line every few seconds, for logs."""

    def __init__(self, stream: TextIO = sys.stderr, every: float = LINE_EVERY) -> None:
        super().__init__()
        self._stream = stream
        self._every = every
        self._last = time.monotonic()

    def done(self, outcome: Outcome) -> None:
        super().done(outcome)
        self._maybe_line()

    def up_to_date(self, n: int) -> None:
        super().up_to_date(n)
        self._maybe_line()

    def _maybe_line(self) -> None:
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            print(f"progress: {self.line()}", file=self._stream, flush=True)


class Bars(Counts):
    """Two tqdm bars: files (its total grows as listings arrive) and bytes."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        super().__init__()
        from tqdm import tqdm

        self._files: Any = tqdm(total=0, unit="file", desc="files", file=stream, position=0,
                                dynamic_ncols=True)
        self._bytes: Any = tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc="bytes",
                                file=stream, position=1, dynamic_ncols=True)

    def add_found(self, n: int = 1) -> None:
        super().add_found(n)
        self._files.total = self.found  # shown at the next update; a redraw per item is costly

    def add_bytes(self, n: int) -> None:
        super().add_bytes(n)
        self._bytes.update(n)

    def done(self, outcome: Outcome) -> None:
        super().done(outcome)
        self._files.update(1)

    def up_to_date(self, n: int) -> None:
        super().up_to_date(n)
        self._files.update(n)

    def close(self) -> None:
        self._files.close()
        self._bytes.close()


def make_progress(*, enabled: bool, stream: TextIO = sys.stderr) -> Progress:
    """Bars on a terminal, lines otherwise, nothing when disabled."""
    if not enabled:
        return Progress()
    if stream.isatty():
        return Bars(stream)
    return Lines(stream)
