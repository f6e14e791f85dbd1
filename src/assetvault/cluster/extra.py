"""Whether the cluster extra is installed: asked before anything of Dask is imported."""

from __future__ import annotations

import importlib.util

from .. import errors

EXTRA = "pip install 'assetvault[cluster]'"


def require_dask() -> None:
    """UsageError (exit 2) when Dask distributed cannot be imported."""
    try:
        found = importlib.util.find_spec("distributed") is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules
        found = False
    if not found:
        raise errors.UsageError(f"--workers and --cluster need Dask distributed: {EXTRA}")
