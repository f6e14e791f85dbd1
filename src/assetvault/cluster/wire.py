"""What crosses the cluster's connection besides the plugin: outcomes as plain lists (Dask's
event stream carries msgpack types only), and the name of the archive's probe file."""

from __future__ import annotations

import msgspec

from ..models import Outcome, Status

PROBE = "cluster-probe"  # under .assetvault/: a local archive every worker must see


class Refusal(msgspec.Struct, frozen=True):
    """A worker's answer to a batch it cannot take: the run sends no more there."""

    worker: str
    reason: str


def encode_outcome(o: Outcome) -> list[object]:
    return [o.key, o.job, o.status.value, o.url, o.path, o.size, o.sha256, o.error,
            o.upstream_version, o.etag, o.last_modified, o.fetched_bytes]


def decode_outcome(wire: object) -> Outcome:
    """An outcome from a worker; ValueError if the list is not one."""
    if not isinstance(wire, list | tuple) or len(wire) != 12:
        raise ValueError("not an outcome")
    key, job, status, url, path, size, sha, error, version, etag, modified, fetched = wire
    if not (isinstance(key, str) and isinstance(job, str) and isinstance(status, str)
            and isinstance(url, str) and isinstance(size, int) and isinstance(fetched, int)):
        raise ValueError("not an outcome")
    return Outcome(key, job, Status(status), url, _text(path), size, _text(sha), _text(error),
                   _text(version), _text(etag), _text(modified), fetched)


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError("not an outcome")
