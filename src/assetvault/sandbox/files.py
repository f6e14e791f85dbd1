"""The bytes behind a file URL: which format, how big, which version, and their checksums."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from .detrand import hkey, hnum
from .formats import BLOCK, Layout, dst_size, kind_of, layout, padding_block

__all__ = ["FileSpec", "etag_for", "iter_chunks", "make_spec", "md5_of", "read"]

_CONTENT_TYPES = {
    "png": "image/png", "pdf": "application/pdf", "jpg": "image/jpeg",
    "dst": "application/octet-stream", "bin": "application/octet-stream",
}


@dataclass(frozen=True, slots=True)
class FileSpec:
    """One version of one file. ``family`` is ``blob`` (Azure), ``cdn`` or ``rack`` (Rackspace)."""

    path: str
    family: str
    key: bytes
    layout: Layout
    modified: datetime
    has_md5: bool

    @property
    def size(self) -> int:
        return self.layout.size

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self.layout.kind]


def family_of(path: str) -> str:
    """Which storage a path imitates, from its first segment."""
    head = path.lstrip("/").split("/", 1)[0]
    return {"blob": "blob", "rackcdn": "rack"}.get(head, "cdn")


def make_spec(seed: int, path: str, generation: int, modified: datetime,
              size_min: int, size_max: int, variant: int = 0) -> FileSpec:
    """The file at ``path`` after ``generation`` upstream changes; ``variant`` is fault churn."""
    key = hkey("file", seed, path, generation, variant)
    size = size_min + hnum("size", key) % (size_max - size_min + 1)
    kind = kind_of(path)
    if kind == "dst":
        size = dst_size(size, size_min)
    family = family_of(path)
    # Whether a blob carries an MD5 is a property of the blob, not of its version.
    has_md5 = family == "blob" and hnum("md5?", seed, path) % 2 == 0
    return FileSpec(path, family, key, layout(kind, size, key), modified, has_md5)


def read(spec: FileSpec, start: int, stop: int) -> bytes:
    """Bytes ``[start, stop)`` of the file."""
    return b"".join(iter_chunks(spec, start, stop))


def iter_chunks(spec: FileSpec, start: int, stop: int) -> Iterator[bytes]:
    """Bytes ``[start, stop)`` in pieces of at most one block, computed lazily."""
    lay = spec.layout
    stop = min(stop, lay.size)
    pad_start = len(lay.prefix)
    pad_stop = pad_start + lay.padding
    if start < pad_start:
        yield lay.prefix[start:min(stop, pad_start)]
    lo, hi = max(start, pad_start) - pad_start, min(stop, pad_stop) - pad_start
    while lo < hi:
        index, offset = divmod(lo, BLOCK)
        take = min(BLOCK - offset, hi - lo)
        yield padding_block(lay.kind, spec.key, index)[offset:offset + take]
        lo += take
    if stop > pad_stop:
        yield lay.suffix[max(start, pad_stop) - pad_stop:stop - pad_stop]


_MD5_CACHE: OrderedDict[bytes, bytes] = OrderedDict()
_MD5_LOCK = threading.Lock()
_MD5_CACHE_SIZE = 4096


def md5_of(spec: FileSpec) -> bytes:
    """The MD5 digest of the whole file, cached by version; O(size) on a miss."""
    # The content is a function of the key AND the size (sandboxes with other size ranges
    # share this process-wide cache), so both name the entry.
    cache_key = spec.key + spec.size.to_bytes(8, "big")
    with _MD5_LOCK:
        if cache_key in _MD5_CACHE:
            _MD5_CACHE.move_to_end(cache_key)
            return _MD5_CACHE[cache_key]
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in iter_chunks(spec, 0, spec.size):
        digest.update(chunk)
    value = digest.digest()
    with _MD5_LOCK:
        _MD5_CACHE[cache_key] = value
        while len(_MD5_CACHE) > _MD5_CACHE_SIZE:
            _MD5_CACHE.popitem(last=False)
    return value


def md5_base64(md5: bytes) -> str:
    return base64.b64encode(md5).decode("ascii")


def etag_for(spec: FileSpec, md5: bytes | None) -> str:
    """Azure's opaque ``0x8D…``, an nginx-like pair for the CDN, the content MD5 on Rackspace."""
    if spec.family == "rack":
        if md5 is None:
            raise ValueError("a Rackspace ETag needs the MD5")
        return f'"{md5.hex()}"'
    if spec.family == "blob":
        return '"0x8D%013X"' % (hnum("etag", spec.key) % 16**13)
    return f'"{spec.key.hex()[:8]}-{spec.size:x}"'
