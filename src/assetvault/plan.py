"""Pure decisions about items: skip or fetch, which shard, what a document needs."""

from __future__ import annotations

import hashlib

from .models import Item
from .redact import redact_url
from .store import Row


def is_up_to_date(item: Item, row: Row | None, size_on_disk: int | None) -> bool:
    """Complete in state, same URL, same upstream version (else size), file present and whole."""
    if row is None or row.status not in ("complete", "gone") or row.size is None:
        return False
    if row.url != redact_url(item.url) or size_on_disk != row.size:
        return False
    if item.upstream_version is not None:
        return row.version == item.upstream_version
    if item.expected_size is not None:
        return row.size == item.expected_size
    return True


def in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    """Whether ``key`` belongs to shard K of N (a stable hash, the same on every machine)."""
    if shard is None:
        return True
    k, n = shard
    return int.from_bytes(hashlib.sha1(key.encode(), usedforsecurity=False).digest()[:8]) % n == k


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` with 0 ≤ K < N, else ValueError."""
    k_text, sep, n_text = text.partition("/")
    if not sep or not k_text.isdigit() or not n_text.isdigit():
        raise ValueError(f"--shard takes K/N, like 0/4; got {text!r}")
    k, n = int(k_text), int(n_text)
    if not 0 <= k < n:
        raise ValueError(f"--shard K/N needs 0 ≤ K < N; got {text!r}")
    return k, n
