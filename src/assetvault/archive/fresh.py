"""Pure decisions about items: skip or fetch, what a document needs."""

from __future__ import annotations

from ..models import ARCHIVED, Item, Row


def is_up_to_date(item: Item, row: Row | None, size_on_disk: int | None, shown: str) -> bool:
    """Complete in state, same URL, same upstream version, the size the API lists (if it
    lists one), file present and whole.

    ``shown`` is the item's URL as the run stores it (redacted by the run's redactor). A
    listed size that differs from the archived file's means new bytes whatever the version
    says (an upstream that replaced a file without touching its ``updated_at``).
    """
    if row is None or row.status not in ARCHIVED or row.size is None:
        return False
    if row.url != shown or size_on_disk != row.size:
        return False
    if item.expected_size is not None and row.size != item.expected_size:
        return False
    return item.upstream_version is None or row.version == item.upstream_version


