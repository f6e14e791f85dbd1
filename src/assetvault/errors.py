"""The exception tree. Each error knows its exit code; only the CLI turns them into exits.

::

    AssetvaultError                 exit 1   anything we raise on purpose
    ├── UsageError                  exit 2   bad command line or unusable archive path
    ├── ManifestError               exit 2   bad manifest: names file, job, key and line
    ├── RunFatalError               exit 1   the run cannot go on (disk full); state is kept
    ├── JobFatalError               exit 1   one job cannot go on; other jobs run
    │   └── CredentialsError        exit 2   the API refused the job's credentials
    └── FetchError                  exit 1   one request or one item failed
        ├── RetryableError                   another attempt may cure it: connection, timeout,
        │   │                                408/429/5xx, truncated body, size or MD5 check
        │   └── IntegrityError               the bytes arrived but do not match what was promised
        ├── HTTPStatusError                  a status that no retry will change (most 4xx)
        ├── BadResponseError                 a body of the wrong shape (not JSON, error set)
        └── UnsafeURLError                   a URL we refuse to fetch (scheme, host not allowed)

Messages never contain secrets: callers pass redacted URLs only.
"""

from __future__ import annotations

import errno
import sqlite3


class AssetvaultError(Exception):
    """Base of every error assetvault raises on purpose."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(AssetvaultError):
    """The command line or the archive path cannot be used."""

    exit_code = 2


class ManifestError(AssetvaultError):
    """The manifest is invalid; nothing is created or requested."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str,
        job: str | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        self.file = file
        self.job = job
        self.key = key
        self.line = line
        where = [file + (f", line {line}" if line is not None else "")]
        if job is not None:
            where.append(f"job {job!r}")
        if key is not None:
            where.append(f"key {key!r}")
        super().__init__(f"{'; '.join(where)}: {message}")


class RunFatalError(AssetvaultError):
    """The whole run must stop (for example the disk is full); state is kept."""


class JobFatalError(AssetvaultError):
    """One job cannot continue; the other jobs of the run go on."""


class CredentialsError(JobFatalError):
    """The API refused the job's credentials (or kept refusing through every retry)."""

    exit_code = 2


class FetchError(AssetvaultError):
    """One request or item failed; ``url`` is always redacted."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class RetryableError(FetchError):
    """A failure that another attempt may cure."""

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        retry_after: float | None = None,
        status: int | None = None,
        origin: tuple[str, str, int] | None = None,
    ) -> None:
        super().__init__(message, url=url)
        self.retry_after = retry_after
        self.status = status
        self.origin = origin  # the origin that answered (after redirects), when one did


class IntegrityError(RetryableError):
    """The bytes arrived but do not match the promised size or checksum."""


class HTTPStatusError(FetchError):
    """A status that another attempt will not change."""

    def __init__(self, message: str, *, url: str = "", status: int = 0) -> None:
        super().__init__(message, url=url)
        self.status = status


class BadResponseError(FetchError):
    """The response arrived but is not what the API documents."""


class UnsafeURLError(FetchError):
    """A URL that assetvault refuses to fetch."""


DISK_FULL = ("the disk is full: the run stopped, state is kept; free some space and run again "
             "to resume")


def is_disk_full(exc: BaseException) -> bool:
    """Whether a failure (or any failure inside a group or behind a cause) is a full disk."""
    if isinstance(exc, BaseExceptionGroup):
        return any(is_disk_full(e) for e in exc.exceptions)
    if isinstance(exc, RunFatalError) and "disk is full" in exc.message:
        return True
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
        return True
    return exc.__cause__ is not None and is_disk_full(exc.__cause__)


def first_error(exc: BaseException) -> str:
    """The first error inside a (nested) exception group, as ``Type: text``."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"
