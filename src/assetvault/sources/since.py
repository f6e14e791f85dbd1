"""Which ``last_updated_at`` each OnPremise owner's listing sends (``since:``).

``since: last-run`` is kept per owner, not per job: an owner's listing may leave out what
was updated before the start of the last clean run that listed *that owner*, with *the same
selection* (base_url, include, versions, include_deleted). An owner the job never listed
cleanly (a product just added to the job, or new in the account), or one whose selection
changed (a version name added), is listed in full: the job-wide time would have hidden its
older assets for good.
"""

from __future__ import annotations

import hashlib
import json

from ..config.jobs import OnpremiseJob


class Since:
    """The ``last_updated_at`` of each owner's listing in one run, and what was listed."""

    def __init__(self, fixed: str | None = None,
                 last: dict[str, str] | None = None) -> None:
        """``fixed``: an explicit ``since`` time, for every owner; ``last``: per owner key,
        the start of the last clean run that listed it (``since: last-run``)."""
        self._fixed = fixed
        self._last = last or {}
        self.listed: set[str] = set()  # owners whose listing answered in this run
        self.partial = False  # some listing left out what was not updated

    def of(self, owner: str) -> str | None:
        """The ``last_updated_at`` for the owner's listing (None: list it in full)."""
        found = self._fixed if self._fixed is not None else self._last.get(owner)
        if found is not None:
            self.partial = True
        return found


def selection_of(job: OnpremiseJob) -> str:
    """What decides which files an owner's listing yields, as a short digest: a change
    means the files of the new selection were never listed, whatever their age."""
    chosen = [job.base_url.rstrip("/"), sorted(job.include),
              None if job.versions is None else sorted(job.versions), job.include_deleted]
    return hashlib.sha256(json.dumps(chosen).encode()).hexdigest()[:16]
