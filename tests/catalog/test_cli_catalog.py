"""The catalog from the command line: ``run --catalog`` against the hostile sandbox, an
object-store archive, and what is not an archive."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import bagit

from assetvault.sandbox import DatasetConfig, SandboxThread

from ..conftest import API_KEY, TOKEN, onpremise_job, run_cli, spectrum_job, write_manifest
from ..seaweed import SeaweedS3
from ..test_s3_cli import bucket, cli, manifest, storage_of
from .kit import make_archive, png


def test_not_an_archive_is_one_paragraph_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    for target in (tmp_path, tmp_path / "missing"):
        result = run_cli("catalog", target)
        assert result.code == 2 and "Traceback" not in result.err
        assert "not an archive" in result.err and result.err.count("\n") == 1
    assert not (tmp_path / "catalog").exists()


def test_a_catalog_that_cannot_be_written_is_one_paragraph_and_exit_1(tmp_path: Path) -> None:
    root = make_archive(tmp_path / "archive", {"urls/job/a.png": png()}, {})
    (root / "catalog").write_text("a file where the folder goes")
    result = run_cli("catalog", root)
    assert result.code == 1 and "Traceback" not in result.err
    assert "could not be built" in result.err and result.err.count("\n") == 1
    bagit.Bag(str(root)).validate()


def _exit_codes(archive: Path) -> list[int]:
    """Each run's exit code as the run itself recorded it (before any catalog)."""
    db = sqlite3.connect(archive / ".assetvault/state.sqlite")
    try:
        return [int(c) for (c,) in db.execute("SELECT exit_code FROM runs ORDER BY id")]
    finally:
        db.close()


def test_run_with_catalog_against_hostile_upstreams(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    with SandboxThread(DatasetConfig(hostile=True)) as box:
        jobs = write_manifest(tmp_path, [spectrum_job(box), onpremise_job(box)])
        result = run_cli("run", jobs, "--no-progress", "--catalog", timeout=120)
        assert "Traceback" not in result.err and "warning: the catalog" not in result.err
        assert [result.code] == _exit_codes(archive)  # the broken listings: 1, not the catalog
        text = "\n".join(p.read_bytes().decode("utf-8", "replace")
                         for p in (archive / "catalog").rglob("*") if p.suffix in (".html", ".js"))
        # a catalog that cannot be written: a warning, the run's own exit code, a valid bag
        shutil.rmtree(archive / "catalog")
        (archive / "catalog").write_text("in the way")
        blocked = run_cli("run", jobs, "--no-progress", "--catalog", timeout=120)
    assert "warning: the catalog was not built" in blocked.err and "Traceback" not in blocked.err
    assert [result.code, blocked.code] == _exit_codes(archive)
    assert re.search(r"catalog: \d+ records in \d+ groups", result.out)
    bagit.Bag(str(archive)).validate()
    for secret in (TOKEN, API_KEY, str(archive.resolve()), str(tmp_path)):
        assert secret not in text
    assert not re.search(r'(?:src|href)="(?:[a-z]+:|//|/)', text, re.I)


def test_an_object_store_archive_gets_its_catalog_under_the_prefix(
        seaweed: SeaweedS3, tmp_path: Path) -> None:
    url = f"s3://{bucket(seaweed)}/brand"
    with SandboxThread(DatasetConfig(organizations=1, assets_per_org=4, products=1,
                                     beers=0)) as box:
        jobs = manifest(tmp_path, box, url)
        ran = cli(seaweed, "run", jobs, "--no-progress", "--catalog",
                  "--state-dir", tmp_path / "one")
    assert ran.code == 0, ran.err
    assert f"open: {url}/catalog/index.html" in ran.out
    store = storage_of(seaweed, url, tmp_path)
    keys = {s.key for s in store.list("catalog/")}
    assert "catalog/index.html" in keys and "catalog/search/meta.js" in keys
    assert any(k.startswith("catalog/previews/") and k.endswith(".png") for k in keys)
    secret = seaweed.env()["AWS_SECRET_ACCESS_KEY"]
    for key in keys:
        assert secret.encode() not in store.read(key)
    # another machine, from the snapshot the archive carries: nothing rendered again
    again = cli(seaweed, "catalog", url, "--state-dir", tmp_path / "fresh")
    assert again.code == 0, again.err
    assert "previews: 0 rendered" in again.out
    assert "catalog/" not in store.read("manifest-sha256.txt").decode()
    verified = cli(seaweed, "verify", url)  # the catalog's objects are no payload and no extra
    assert verified.code == 0 and "extra" not in verified.out, verified.out
