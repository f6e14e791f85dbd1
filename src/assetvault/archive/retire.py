"""Files a record replaced under another name: out of ``data/``, into the history.

An original (or an OnPremise version) takes its extension from its URL, so a record whose
upload changed type (``original.png`` → ``original.jpg``) names a new key. The old file is not
gone (the asset is still listed) but replaced: like any replaced bytes it is kept under
``.assetvault/history/`` and leaves the payload, or the record would keep two live originals.

Such a file is noted as a successor in the transaction that records it, and looked at once its
record was listed by a run: the files of the same name but for the extension that this run did
not see are what it replaced. Nothing is scanned: a run that placed no such file does nothing.

The order makes every crash safe: (1) the bytes are copied to the history; (2) the row becomes
RETIRING, in the transaction that also clears the seal, so from then on the bag's manifest
leaves the file out; (3) the file is removed from ``data/``; (4) the row becomes REPLACED. A
crash after (2) leaves a file the manifest will not list: every finish first completes the
RETIRING rows, before it seals.
"""

from __future__ import annotations

import msgspec

from ..models import State
from ..storage import DATA, Storage
from .history import keep_history
from .layout import replaceable_stem
from .store import Store


class Replaced(msgspec.Struct, frozen=True):
    """An archived file, and the SHA-256 of the file its record names in its place."""

    key: str
    path: str
    sha256: str
    successor_sha256: str


def retire_replaced(store: Store, storage: Storage, run_id: int, now: str) -> int:
    """Move what this run's listings replaced under another name to the history; how many."""
    finish_retiring(store, storage, now)
    found, done = replaced(store, run_id)
    for r in found:
        # A successor at the very same path (a name that took its extension from the
        # response) already sent these bytes to the history as it replaced them.
        if not store.archived_at(r.path, r.key):
            keep_history(storage, DATA + r.path, r.sha256, replacement=r.successor_sha256)
    if found or done:
        store.retire([r.key for r in found], State.RETIRING, now, done)
        finish_retiring(store, storage, now)
    return len(found)


def replaced(store: Store, run_id: int) -> tuple[list[Replaced], list[str]]:
    """The archived files that the successors this run listed replace, and those successors.

    A successor this run did not list (a stopped run, a failed listing, another --job) waits
    for a run that does: only a record listed now says what it names now.
    """
    found: list[Replaced] = []
    done: list[str] = []
    for key, job, sha, seen in store.successors(run_id):
        stem = replaceable_stem(key)
        if not seen or stem is None or sha is None:
            continue
        done.append(key)
        # "/" follows ".": every key that is the stem and an extension sorts in [stem, stem/).
        found.extend(Replaced(old, path, old_sha, sha)
                     for old, path, old_sha in store.unseen_beside(job, run_id, stem, stem + "/")
                     if replaceable_stem(old) == stem)
    return found, done


def finish_retiring(store: Store, storage: Storage, now: str) -> None:
    """Remove from ``data/`` the files of RETIRING rows (their bytes are in the history since
    before they became RETIRING), then mark them REPLACED."""
    rows = store.retiring()
    for key, path in rows:
        # A file at the same path that another archived row names is that row's: kept.
        if not store.archived_at(path, key):
            storage.remove(DATA + path)
    if rows:
        store.retire([key for key, _ in rows], State.REPLACED, now)
