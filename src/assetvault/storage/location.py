"""Where an archive is: a local folder, or an object-store URL with its connection options."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

SCHEMES = ("s3", "gs", "az")
OPTION_KEYS = ("endpoint", "region", "allow_http", "virtual_hosted_style")


class StoreUrl(msgspec.Struct, frozen=True):
    """``s3://BUCKET/PREFIX`` and the manifest's ``archive_options`` (no credentials: those
    come from the environment, the ecosystem's way)."""

    scheme: str
    bucket: str
    prefix: str  # without a leading or trailing "/"; may be empty
    options: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.prefix}".rstrip("/")

    def option(self, name: str) -> str | None:
        return dict(self.options).get(name)


Location = Path | StoreUrl


def parse_store_url(text: str) -> StoreUrl | None:
    """The object-store URL ``text`` names, None when it is not one (a local path).

    Raises ValueError for a URL of a known scheme that names no bucket.
    """
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        return None
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"{text!r} names no bucket: write {scheme}://BUCKET/PREFIX")
    return StoreUrl(scheme.lower(), bucket, prefix.strip("/"))


def work_folder(location: Location, state_dir: Path | None = None,
                environ: Mapping[str, str] = os.environ) -> Path:
    """The local folder of a run's working state (SQLite, journal, partial files, lock).

    Inside a local archive; for an object store, ``state_dir`` or a folder under the user's
    cache keyed by the archive URL and the store's endpoint, so two archives never share one
    (the same bucket and prefix on AWS and on a local S3 server are two archives).
    """
    if isinstance(location, Path):
        return location / ".assetvault"
    if state_dir is not None:
        return state_dir
    cache = Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    endpoint = (location.option("endpoint") or environ.get("AWS_ENDPOINT_URL_S3")
                or environ.get("AWS_ENDPOINT_URL") or "")
    key = hashlib.sha256(f"{location} {endpoint}".encode()).hexdigest()[:16]
    return cache / "assetvault" / f"{location.bucket}-{key}"
