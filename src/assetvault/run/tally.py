"""The one owner of a run's counts and failures, and of redacting what they show."""

from __future__ import annotations

import logging
import time

import msgspec

from ..config.jobs import Job
from ..models import (
    DocRecord,
    Failure,
    Item,
    JobStats,
    ListingFailure,
    Outcome,
    Pending,
    RunResult,
    Status,
)
from ..redact import Redactor
from .progress import Progress

log = logging.getLogger("assetvault")


class Tally:
    """Counts per job, the failures of the run, and the progress display they feed.

    Everything it keeps is shown (summary, report, progress), so everything passes the run's
    redactor on the way in.
    """

    def __init__(self, jobs: tuple[Job, ...], result: RunResult, redact: Redactor,
                 progress: Progress) -> None:
        self.stats = {job.name: JobStats(job.name) for job in jobs}
        result.stats = list(self.stats.values())
        self.result = result
        self.redact = redact
        self.progress = progress
        self._started: dict[str, float] = {}
        # Where a job that could not go on was asking: its API (a URL list has none).
        self._api = {job.name: redact.url(getattr(job, "base_url", "")) for job in jobs}

    def job_started(self, name: str) -> None:
        self._started[name] = time.monotonic()

    def job_failed(self, name: str, message: str, *, credentials: bool = False) -> None:
        """The job cannot go on (its listing stopped); other jobs run."""
        stats = self.stats[name]
        stats.credentials_refused = stats.credentials_refused or credentials
        stats.fatal = self.redact(message)

    def found(self, entry: Item | Pending) -> None:
        self.stats[entry.job].found += 1
        self.progress.add_found()

    def up_to_date(self, items: list[Item]) -> None:
        """These items need nothing: complete and unchanged."""
        now = time.monotonic()
        for item in items:
            self.stats[item.job].up_to_date += 1
        for job in {item.job for item in items}:
            self.stats[job].seconds = now - self._started.get(job, now)
        self.progress.up_to_date(len(items))

    def listing_failed(self, failure: ListingFailure) -> None:
        log.debug("listing failed %s %s: %s", failure.job, failure.key, self.redact(failure.error))
        self.stats[failure.job].listing_failures += 1
        self.result.failures.append(Failure(failure.job, failure.key, self.redact(failure.url),
                                            self.redact(failure.error)))

    def doc_failed(self, doc: DocRecord) -> None:
        if doc.error is not None:
            self.result.failures.append(Failure(doc.job, doc.key, "", doc.error))

    def outcome(self, outcome: Outcome) -> Outcome:
        """Count one outcome; the outcome as it may be stored and shown (error redacted)."""
        if outcome.error is not None:
            outcome = msgspec.structs.replace(outcome, error=self.redact(outcome.error))
        stats = self.stats[outcome.job]
        stats.count(outcome)
        stats.seconds = time.monotonic() - self._started.get(outcome.job, time.monotonic())
        if outcome.status is Status.FAILED:
            self.result.failures.append(Failure(outcome.job, outcome.key,
                                                self.redact(outcome.url), outcome.error or ""))
        self.progress.done(outcome)
        if log.isEnabledFor(logging.DEBUG):
            detail = outcome.error or (f"{outcome.size} bytes sha256:{outcome.sha256}"
                                       if outcome.sha256 else "")
            log.debug("%s %s %s %s", outcome.status.value, outcome.job, outcome.path or outcome.key,
                      detail)
        return outcome

    def close(self) -> None:
        """The run is over: a job that finished nothing shows its listing's time, and a job
        that could not go on is a failure of the run."""
        for name, started in self._started.items():
            stats = self.stats[name]
            if not stats.seconds:
                stats.seconds = time.monotonic() - started
        for stats in self.stats.values():
            if stats.fatal:
                self.result.failures.append(Failure(stats.name, stats.name,
                                                    self._api.get(stats.name, ""), stats.fatal))
