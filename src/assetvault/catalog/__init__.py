"""The catalog (SPEC 9): a static, browsable HTML picture of an archive in ``catalog/``.

Built from the state database and the records' ``asset.json``, written through the archive's
storage (a folder or an object-store prefix), opened from the file system with no server.
"""

from __future__ import annotations

from .build import CATALOG, BuildResult, build_catalog

__all__ = ["CATALOG", "BuildResult", "build_catalog"]
