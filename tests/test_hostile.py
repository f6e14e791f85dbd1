"""A hostile upstream: traversal names, bad schemes, wrong shapes, redirects, HTML pages."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import bagit

from assetvault.sandbox import DatasetConfig, SandboxThread

from .conftest import onpremise_job, run_cli, spectrum_job, write_manifest


def test_hostile_upstream_archives_the_good_and_reports_the_bad(tmp_path: Path) -> None:
    with SandboxThread(DatasetConfig(hostile=True)) as box:
        jobs = [spectrum_job(box, include_inactive=True, retries=1),
                onpremise_job(box, include_deleted=True, retries=1,
                              products=box.dataset.owner_ids("products"))]
        manifest = write_manifest(tmp_path, jobs)
        result = run_cli("run", manifest, "--no-progress")
    archive = tmp_path / "archive"
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    bagit.Bag(str(archive)).validate()
    data = (archive / "data").resolve()
    for dirpath, _dirs, files in os.walk(archive / "data"):
        for name in files:
            path = Path(dirpath, name)
            assert not path.is_symlink()
            assert path.resolve().is_relative_to(data)
    report = json.loads(sorted((archive / ".assetvault/reports").glob("*.json"))[-1].read_text())
    errors = " ".join(f["error"] for f in report["failures"])
    for reason in ("file:", "ftp:", "data:", "not JSON", "not a JSON object"):
        assert reason in errors
    assert not list(tmp_path.glob("**/passwd")) or all(
        p.resolve().is_relative_to(data) for p in tmp_path.glob("**/passwd"))
    # every good file is there and intact
    db_rows = _complete_files(archive)
    assert len(db_rows) > 40
    for path, sha in db_rows:
        assert hashlib.sha256((archive / "data" / path).read_bytes()).hexdigest() == sha


def _complete_files(archive: Path) -> list[tuple[str, str]]:
    import sqlite3

    db = sqlite3.connect(archive / ".assetvault/state.sqlite")
    try:
        return db.execute("SELECT path, sha256 FROM items WHERE status = 'complete'").fetchall()
    finally:
        db.close()
