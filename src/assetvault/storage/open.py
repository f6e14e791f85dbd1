"""Opening an archive's storage, and checking an object store before anything is listed."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__, errors
from .base import DATA, MARKER, SNAPSHOT, STATE, Storage, StorageError
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

    try:
        return S3Storage(location, work / "staging", environ)
    except StorageError as exc:
        raise errors.UsageError(f"{location}: these object-store settings cannot be used: {exc}. "
                                "Check AWS_ENDPOINT_URL / archive_options: endpoint and the "
                                "region") from None


def store_secrets(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The object store's credentials in the environment: secrets like a manifest's (SPEC 5)."""
    return [environ[v] for v in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")
            if environ.get(v)]


def check_store(storage: S3Storage, *, claim: bool = False) -> None:
    """Refused credentials, a missing bucket, an endpoint that does not answer, or a prefix
    holding something other than an assetvault archive: a UsageError (exit 2) naming the
    archive, found before any download. With ``claim``, an empty prefix gets the archive's
    marker before anything else is written, so a run killed at once still left an archive."""
    try:
        top = storage.top_level()
        if top and all(key.endswith("/") for key in top) and next(
                iter(storage.list("")), None) is None:
            top = []  # folders with nothing in them (SeaweedFS keeps a deleted object's)
        stray = next((key for key in top if not _belongs(key)), None)
        ours = bool(top) and stray is None and (storage.size(MARKER) is not None
                                                or storage.size(SNAPSHOT) is not None)
        if not top and claim:
            storage.put_bytes(MARKER, json.dumps({"assetvault": __version__}).encode())
    except StorageError as exc:
        raise errors.UsageError(f"{storage.location}: the archive's object store cannot be used: "
                                f"{exc}. Check the bucket name, AWS_ACCESS_KEY_ID / "
                                "AWS_SECRET_ACCESS_KEY, and the endpoint (AWS_ENDPOINT_URL or "
                                "archive_options: endpoint)") from None
    if stray is not None or (top and not ours):
        what = f"holds {stray!r}, which is not part" if stray else (
            f"holds objects but no {MARKER}: it is not")
        raise errors.UsageError(f"{storage.location}: this prefix {what} of an assetvault "
                                "archive; nothing was written. Point archive at an empty prefix "
                                "or at an existing assetvault archive")


def _belongs(key: str) -> bool:
    return key in ARCHIVE_ROOT or any(key.startswith(f) for f in ARCHIVE_FOLDERS)
