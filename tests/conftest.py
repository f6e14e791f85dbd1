"""Shared fixtures: the sandbox over real sockets, and the CLI as a subprocess."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from assetvault.sandbox import DatasetConfig, SandboxThread

from .seaweed import seaweed_session

# Tests never assert wall-clock times: Hypothesis's per-example deadline (200 ms) is one, and a
# loaded machine broke it (315 ms once, 1.4 ms on the retry). Examples are still bounded by
# pytest-timeout.
settings.register_profile("assetvault", deadline=None)
settings.load_profile("assetvault")

# One real S3 server (SeaweedFS) for the whole session; each test uses its own bucket.
seaweed = pytest.fixture(scope="session", name="seaweed")(seaweed_session)

TOKEN = "sandbox-spectrum-token"
API_KEY = "sandbox-onpremise-key"
CLI_TIMEOUT = 90


@dataclass
class Cli:
    """The result of one ``assetvault`` subprocess."""

    code: int
    out: str
    err: str


def run_cli(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = CLI_TIMEOUT) -> Cli:
    """Run ``python -m assetvault ARGS`` as a user would, and wait for it (bounded)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "assetvault", *map(str, args)],
                          capture_output=True, text=True, env=full_env, cwd=cwd,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    return Cli(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    box = SandboxThread(DatasetConfig()).start()
    try:
        yield box
    finally:
        box.stop()


def write_manifest(tmp: Path, jobs: list[dict[str, Any]], *, defaults: dict[str, Any] | None = None,
                   archive: str = "archive") -> Path:
    """A manifest file in ``tmp`` (JSON is YAML)."""
    doc: dict[str, Any] = {"version": 1, "archive": archive, "jobs": jobs}
    if defaults:
        doc["defaults"] = defaults
    path = tmp / "jobs.yaml"
    path.write_text(json.dumps(doc, indent=2))
    return path


def spectrum_job(box: SandboxThread, **kw: Any) -> dict[str, Any]:
    job = {"name": "spec", "source": "spectrum", "base_url": box.api_url, "token": TOKEN,
           "client": "carhartt", "organizations": box.dataset.organization_ids(),
           "rate_limit": 50, "burst": 50}
    job.update(kw)
    return job


def onpremise_job(box: SandboxThread, **kw: Any) -> dict[str, Any]:
    job = {"name": "onp", "source": "onpremise", "base_url": box.api_url, "api_key": API_KEY,
           "products": box.dataset.owner_ids("products"), "beers": box.dataset.owner_ids("beers"),
           "rate_limit": 50, "burst": 50}
    job.update(kw)
    return job


def states(archive: Path) -> dict[str, str]:
    """Every item's key and state, from the archive's state database."""
    db = sqlite3.connect(archive / ".assetvault/state.sqlite")
    try:
        return {str(k): str(s) for k, s in db.execute("SELECT key, status FROM items")}
    finally:
        db.close()
