"""Opening an archive's storage, and checking an object store before anything is listed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .. import errors
from .base import DATA, STATE, Storage, StorageError
from .local import LocalStorage
from .location import Location, StoreUrl

if TYPE_CHECKING:
    from .s3 import S3Storage

# What may sit at the root of an archive: the bag's tag files, the payload, our own folders.
ARCHIVE_ROOT = frozenset({"bagit.txt", "bag-info.txt", "manifest-sha256.txt",
                          "tagmanifest-sha256.txt"})
ARCHIVE_FOLDERS = frozenset({DATA, STATE, "catalog/"})


def open_storage(location: Location, work: Path,
                 environ: Mapping[str, str] = os.environ) -> Storage:
    """The storage of the archive at ``location``; ``work`` is the run's local folder."""
    if isinstance(location, Path):
        return LocalStorage(location)
    return open_object_store(location, work, environ)


def open_object_store(location: StoreUrl, work: Path,
                      environ: Mapping[str, str] = os.environ) -> S3Storage:
    """The storage of an object-store archive (its client is imported only now)."""
    if location.scheme != "s3":
        raise errors.UsageError(f"{location}: only s3:// object stores are supported so far "
                                "(gs:// and az:// are not)")
    from .s3 import S3Storage

    return S3Storage(location, work / "staging", environ)


def store_secrets(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The object store's credentials in the environment: secrets like a manifest's (SPEC 5)."""
    return [environ[v] for v in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")
            if environ.get(v)]


def check_store(storage: S3Storage) -> None:
    """Refused credentials, a missing bucket, an endpoint that does not answer, or a prefix
    holding something other than an assetvault archive: a UsageError (exit 2) naming the
    archive, found before any download."""
    try:
        stray = next((key for key in storage.top_level() if not _belongs(key)), None)
    except StorageError as exc:
        raise errors.UsageError(f"{storage.location}: the archive's object store cannot be used: "
                                f"{exc}. Check the bucket name, AWS_ACCESS_KEY_ID / "
                                "AWS_SECRET_ACCESS_KEY, and the endpoint (AWS_ENDPOINT_URL or "
                                "archive_options: endpoint)") from None
    if stray is not None:
        raise errors.UsageError(f"{storage.location}: this prefix holds {stray!r}, which is not "
                                "part of an assetvault archive; point archive at an empty prefix "
                                "or at an existing archive")


def _belongs(key: str) -> bool:
    return key in ARCHIVE_ROOT or any(key.startswith(f) for f in ARCHIVE_FOLDERS)
