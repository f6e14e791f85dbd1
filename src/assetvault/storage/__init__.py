"""Where an archive's bytes live: one interface; a folder, or an object store."""

from .base import (
    DATA,
    HISTORY,
    REPORTS,
    STATE,
    Meta,
    Storage,
    StorageError,
    Stored,
    Stream,
    UnsafeKeyError,
    Upload,
)
from .local import LocalStorage

__all__ = ["DATA", "HISTORY", "REPORTS", "STATE", "LocalStorage", "Meta", "Storage",
           "StorageError", "Stored", "Stream", "UnsafeKeyError", "Upload"]
