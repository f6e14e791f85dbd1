"""The CLI as a user runs it: a subprocess against the sandbox, over real sockets."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import urllib.request
from pathlib import Path

import bagit
import pytest

from assetvault.sandbox import DatasetConfig, SandboxThread
from assetvault.transfer.partial import XATTR

from .conftest import TOKEN, onpremise_job, run_cli, spectrum_job, write_manifest


def file_rows(archive: Path) -> list[tuple[str, str, str, str]]:
    db = sqlite3.connect(archive / ".assetvault/state.sqlite")
    try:
        return db.execute("SELECT key, url, path, status FROM items WHERE kind = 'file'").fetchall()
    finally:
        db.close()


def latest_report(archive: Path) -> dict[str, object]:
    reports = sorted((archive / ".assetvault/reports").glob("*.json"))
    return json.loads(reports[-1].read_text())  # type: ignore[no-any-return]


def api_paths(box: SandboxThread) -> int:
    return sum(n for p, n in box.counts.items() if p.startswith(("/api/", "/products/", "/beers/")))


def file_requests(box: SandboxThread) -> int:
    return sum(box.counts.values()) - api_paths(box)


def test_archives_both_sources_into_a_valid_bag(sandbox: SandboxThread, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, [spectrum_job(sandbox), onpremise_job(sandbox)])
    result = run_cli("run", manifest, "--no-progress", "--report", tmp_path / "r.json")
    assert result.code == 0, result.err
    archive = tmp_path / "archive"
    rows = file_rows(archive)
    assert rows, "nothing archived"
    for _key, url, path, status in rows:
        if status == "pending":
            continue
        assert status == "complete"
        want = hashlib.sha256(sandbox.dataset.file_bytes(url)).hexdigest()
        got = hashlib.sha256((archive / "data" / path).read_bytes()).hexdigest()
        assert got == want, path
    bagit.Bag(str(archive)).validate()
    assert run_cli("verify", archive).code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["exit_code"] == 0 and report["failures"] == []
    jobs = {j["name"]: j for j in report["jobs"]}
    assert jobs["spec"]["downloaded"] > 0 and jobs["onp"]["pending"] > 0
    for key in ("found", "downloaded", "up_to_date", "pending", "failed", "bytes", "seconds"):
        assert key in jobs["spec"]
    assert "started" in report and "finished" in report


def test_asset_json_is_the_record_as_the_api_gave_it(sandbox: SandboxThread,
                                                       tmp_path: Path) -> None:
    org = sandbox.dataset.organization_ids()[0]
    manifest = write_manifest(tmp_path, [spectrum_job(sandbox, organizations=[org])])
    assert run_cli("run", manifest, "--no-progress").code == 0
    request = urllib.request.Request(
        f"{sandbox.api_url}/api/assets/saved/client/carhartt/organization/{org}?page=1&pageSize=100",
        headers={"SPECTRUM_API_TOKEN": TOKEN})
    with urllib.request.urlopen(request, timeout=10) as resp:
        records = json.load(resp)["contents"]
    assert records
    for record in records:
        saved = tmp_path / f"archive/data/spectrum/carhartt/{org}/{record['id']}/asset.json"
        assert json.loads(saved.read_text()) == record


def test_a_rerun_makes_only_listing_requests(sandbox: SandboxThread, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, [spectrum_job(sandbox), onpremise_job(sandbox)])
    assert run_cli("run", manifest, "--no-progress").code == 0
    assert file_requests(sandbox) > 0
    sandbox.reset_counts()
    second = run_cli("run", manifest, "--no-progress")
    assert second.code == 0, second.err
    assert file_requests(sandbox) == 0
    assert api_paths(sandbox) > 0
    jobs = {j["name"]: j for j in latest_report(tmp_path / "archive")["jobs"]}  # type: ignore[union-attr]
    assert jobs["spec"]["downloaded"] == 0 and jobs["spec"]["up_to_date"] == jobs["spec"]["found"]
    bagit.Bag(str(tmp_path / "archive")).validate()


def test_urls_job_from_csv(sandbox: SandboxThread, tmp_path: Path) -> None:
    files = sorted(p for p in _sandbox_file_paths(sandbox))[:3]
    lines = ["url,path"] + [f"{sandbox.files_url}{p},copies/f{i}.bin" for i, p in enumerate(files)]
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    manifest = write_manifest(tmp_path, [{"name": "legacy", "source": "urls",
                                          "urls_file": "list.csv"}])
    assert run_cli("run", manifest, "--no-progress").code == 0
    for i, p in enumerate(files):
        got = (tmp_path / f"archive/data/urls/legacy/copies/f{i}.bin").read_bytes()
        assert got == sandbox.dataset.file_bytes(p)


def _sandbox_file_paths(box: SandboxThread) -> list[str]:
    org = box.dataset.organization_ids()[0]
    request = urllib.request.Request(
        f"{box.api_url}/api/assets/saved/client/carhartt/organization/{org}",
        headers={"SPECTRUM_API_TOKEN": TOKEN})
    with urllib.request.urlopen(request, timeout=10) as resp:
        records = json.load(resp)["contents"]
    return [r["uploadedAssetUri"].split(box.files_url, 1)[1] for r in records
            if r.get("uploadedAssetUri", "").startswith(box.files_url)]


def test_bad_manifest_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    manifest = tmp_path / "jobs.yaml"
    manifest.write_text("version: 1\narchive: out\njobs:\n  - name: a\n    source: spectrum\n"
                        "    token: t\n    client: c\n    organizations: [1]\n    concurency: 3\n")
    result = run_cli("run", manifest)
    assert result.code == 2
    assert "line 9" in result.err and "concurency" in result.err and "concurrency" in result.err
    assert "Traceback" not in result.err
    assert not (tmp_path / "out").exists()


def test_an_archive_folder_that_cannot_be_made_exits_2_with_a_message(tmp_path: Path) -> None:
    """Where the manifest cannot know (a path under /proc, a read-only disk): the run says
    which key and which folder, exits 2, and shows no traceback."""
    (tmp_path / "u.txt").write_text("http://127.0.0.1:9/x\n")
    for archive in ("/proc/assetvault-nope/archive", "/sys/assetvault-nope"):
        manifest = write_manifest(tmp_path, [{"name": "u", "source": "urls",
                                              "urls_file": "u.txt"}], archive=archive)
        result = run_cli("run", manifest, "--no-progress")
        assert result.code == 2, result.err
        assert str(manifest) in result.err and "'archive'" in result.err, result.err
        assert archive in result.err and "Traceback" not in result.err
        assert "internal error" not in result.err


def test_refused_credentials_exit_2_while_other_jobs_run(sandbox: SandboxThread,
                                                         tmp_path: Path) -> None:
    jobs = [spectrum_job(sandbox, token="wrong-token", retries=1), onpremise_job(sandbox)]
    manifest = write_manifest(tmp_path, jobs)
    result = run_cli("run", manifest, "--no-progress")
    assert result.code == 2, result.err
    assert "credential" in result.err.lower() or "token" in result.err.lower()
    report = latest_report(tmp_path / "archive")
    jobs_report = {j["name"]: j for j in report["jobs"]}  # type: ignore[union-attr]
    assert jobs_report["onp"]["downloaded"] > 0
    # The refused job's failure names where it was asking (SPEC 6: job, key, url, error).
    refused = [f for f in report["failures"] if f["job"] == "spec"]  # type: ignore[union-attr,index]
    assert refused and all(f["url"] == sandbox.api_url for f in refused), refused
    assert "wrong-token" not in (result.out + result.err)


def test_dry_run_lists_and_creates_nothing(sandbox: SandboxThread, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, [onpremise_job(sandbox)])
    result = run_cli("run", manifest, "--dry-run")
    assert result.code == 0, result.err
    assert "would fetch" in result.out and "-> data/onpremise/" in result.out
    assert not (tmp_path / "archive").exists()
    assert file_requests(sandbox) == 0


def test_verify_names_a_flipped_file(sandbox: SandboxThread, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, [onpremise_job(sandbox)])
    assert run_cli("run", manifest, "--no-progress").code == 0
    victim = next((tmp_path / "archive/data").rglob("original.*"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(data)
    result = run_cli("verify", tmp_path / "archive")
    assert result.code == 1
    assert str(victim.relative_to(tmp_path / "archive")) in result.out


def test_failed_files_are_reported_and_exit_1() -> None:
    with SandboxThread(DatasetConfig(), faults="files:500@p0.5") as box:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            manifest = write_manifest(Path(tmp), [onpremise_job(box, retries=0)])
            result = run_cli("run", manifest, "--no-progress")
            assert result.code == 1, result.err
            report = latest_report(Path(tmp) / "archive")
            failures = report["failures"]
            assert isinstance(failures, list) and failures
            assert all("500" in f["error"] for f in failures)
            bagit.Bag(str(Path(tmp) / "archive")).validate()


@pytest.mark.parametrize("verbose", ["-v"])
def test_secrets_never_leave(tmp_path: Path, verbose: str) -> None:
    token, key, header = "Tok-9f8e7d6c5b4a", "Key-1a2b3c4d5e6f", "Hdr-0011223344"
    config = DatasetConfig(spectrum_token=token, onpremise_api_key=key)
    with SandboxThread(config, faults="files:500@p0.2") as box:
        jobs = [spectrum_job(box, token=token, headers={"X-Extra": header}, retries=0),
                onpremise_job(box, api_key=key, retries=0)]
        manifest = write_manifest(tmp_path, jobs)
        result = run_cli("run", manifest, verbose, "--report", tmp_path / "report.json")
        dry = run_cli("run", manifest, "--dry-run", verbose)
        status = run_cli("status", tmp_path / "archive")
    produced = b"".join(p.read_bytes() for p in (tmp_path / "archive").rglob("*") if p.is_file())
    produced += (tmp_path / "report.json").read_bytes()
    for run in (result, dry, status):
        produced += (run.out + run.err).encode()
    for secret in (token, key, header):
        assert secret.encode() not in produced


def partial_labels(folder: Path) -> list[bytes]:
    """What names each partial file's version: its extended attribute, or a sidecar file."""
    found = [p.read_bytes() for p in folder.glob("*.json")]
    for p in folder.glob("*.part"):
        with contextlib.suppress(OSError):
            found.append(os.getxattr(p, XATTR))
    return found


def test_a_secret_under_an_unguessable_parameter_never_reaches_the_archive(
        tmp_path: Path) -> None:
    """A job's token that also turns up in another job's file URLs (a signed CDN link naming
    it under any parameter): neither the state, the report, the partial files' sidecars nor
    a re-run's comparison may hold it."""
    header = TOKEN
    config = DatasetConfig(organizations=1, assets_per_org=4, products=0, beers=0,
                           file_size_min=3_000_000, file_size_max=3_000_000)
    with SandboxThread(config, faults="files:truncate@first1") as box:
        rows = [f"{box.files_url}{p}?x-cdn-auth={header},f/{i}.bin"
                for i, p in enumerate(_sandbox_file_paths(box))]
        (tmp_path / "list.csv").write_text("url,path\n" + "\n".join(rows) + "\n")
        manifest = write_manifest(tmp_path, [{"name": "signed", "source": "urls",
                                              "urls_file": "list.csv", "retries": 0},
                                             spectrum_job(box, retries=0)])
        first = run_cli("run", manifest, "--no-progress", "-v")
        assert first.code == 1, first.err  # the truncated files failed, their partials kept
        labels = partial_labels(tmp_path / "archive/.assetvault/partial")
        assert labels, "no partial was left to resume"
        second = run_cli("run", manifest, "--no-progress", "-v")
        assert second.code == 0, second.err
        fetched = {path: n for path, n in box.counts.items() if not path.startswith("/api/")}
        assert len(fetched) > 4
        third = run_cli("run", manifest, "--no-progress")
        assert third.code == 0  # and nothing fetched again: the stored form matches
        assert {p: n for p, n in box.counts.items() if not p.startswith("/api/")} == fetched
    payload = [p for p in (tmp_path / "archive/data").rglob("*") if p.is_file()]
    assert not [p for p in payload if XATTR in os.listxattr(p)], "a partial's name travelled"
    produced = b"".join(labels)
    produced += b"".join(p.read_bytes() for p in (tmp_path / "archive").rglob("*")
                         if p.is_file() and not p.is_relative_to(tmp_path / "archive/data"))
    for run in (first, second, third):
        produced += (run.out + run.err).encode()
    assert header.encode() not in produced


def test_demo_archives_the_sandbox_into_a_valid_bag(tmp_path: Path) -> None:
    result = run_cli("demo", tmp_path / "demo", "--no-progress")
    assert result.code == 0, result.err
    assert "verify: ok" in result.out
    bagit.Bag(str(tmp_path / "demo")).validate()
    assert run_cli("verify", tmp_path / "demo", "--fast").code == 0
    status = run_cli("status", tmp_path / "demo")
    assert status.code == 0 and "spectrum-demo" in status.out


def test_verbose_names_each_item(sandbox: SandboxThread, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, [onpremise_job(sandbox)])
    result = run_cli("run", manifest, "--no-progress", "-v")
    assert result.code == 0
    assert "downloaded onp onpremise/" in result.err and "sha256:" in result.err
    quiet = run_cli("run", manifest, "-q")
    assert quiet.code == 0 and quiet.out == ""


@pytest.mark.parametrize("workers", [16, 1])
def test_the_same_url_is_fetched_once_per_run_and_stored_at_each_path(tmp_path: Path,
                                                                      workers: int) -> None:
    config = DatasetConfig(organizations=1, assets_per_org=6, products=0, beers=0,
                           file_size_min=20_000, file_size_max=20_000)
    with SandboxThread(config, faults="files:slow:rate=200000") as box:
        paths = _sandbox_file_paths(box)
        shared = paths[0]
        rows = [f"{box.files_url}{p},other/{i}.bin" for i, p in enumerate(paths[1:])]
        rows += [f"{box.files_url}{shared},same/{i}.png" for i in range(40)]
        (tmp_path / "list.csv").write_text("url,path\n" + "\n".join(rows) + "\n")
        manifest = write_manifest(tmp_path, [{"name": "dup", "source": "urls",
                                              "urls_file": "list.csv", "concurrency": workers,
                                              "per_host": workers}])
        assert run_cli("run", manifest, "--no-progress").code == 0
        assert box.counts[shared] == 1
        want = box.dataset.file_bytes(shared)
    copies = list((tmp_path / "archive/data/urls/dup/same").iterdir())
    assert len(copies) == 40 and all(c.read_bytes() == want for c in copies)
    bagit.Bag(str(tmp_path / "archive")).validate()


def test_status_shows_the_last_runs_listing_failures_and_job_errors(tmp_path: Path) -> None:
    # A listing that failed leaves no item row to show: status read only the items' rows.
    with SandboxThread(DatasetConfig(), faults="onpremise:500") as box:
        jobs = [spectrum_job(box), onpremise_job(box, retries=0),
                spectrum_job(box, name="refused", token="wrong-token-0451", retries=0)]
        result = run_cli("run", write_manifest(tmp_path, jobs), "--no-progress")
        assert result.code != 0
        status = run_cli("status", tmp_path / "archive")
    assert status.code == 0, status.err
    text = status.out
    assert "listing failures and job errors of the last run" in text
    owner = box.dataset.owner_ids("products")[0]
    assert f"onp: onpremise/products/{owner}" in text and "HTTP 500" in text
    assert "refused: job 'refused': Spectrum" in text  # the job that could not go on
    assert "api_key=***" in text and "wrong-token-0451" not in text and "sandbox-" not in text
