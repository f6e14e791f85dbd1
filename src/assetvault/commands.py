"""What each subcommand does, once the command line has been parsed."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from . import errors
from .archive.paths import STATE_DIR, ArchivePaths, Workspace
from .archive.snapshot import restore_snapshot
from .archive.store import Store
from .bag.check import Sizes
from .bag.verify import verify_storage
from .bag.write import VerifyResult, verify_bag
from .config.jobs import Manifest, OnpremiseJob, Settings, SpectrumJob
from .config.manifest import load_manifest
from .config.options import RunOptions
from .models import RunResult
from .run.engine import run_manifest
from .run.progress import make_progress
from .run.report import summary_table
from .storage.base import SNAPSHOT
from .storage.location import Location, StoreUrl, parse_store_url, work_folder
from .storage.open import check_store, open_object_store

if TYPE_CHECKING:
    from .catalog.build import BuildResult

log = logging.getLogger("assetvault")

SHOWN_FAILURES = 20
SHARD_WITHDRAWN = (
    "--shard is withdrawn: every shard listed every API again (N times the requests against a "
    "per-key rate limit) and sealed a bag of its own. One run now lists once and spreads the "
    "downloads: --workers N (processes on this machine) or --cluster ADDRESS (a Dask cluster); "
    "see the README")


def _out(line: str) -> None:
    print(line, flush=False)


async def run(args: argparse.Namespace) -> int:
    """``assetvault run``: load the manifest, run the jobs, print the summary."""
    if args.shard is not None:
        raise errors.UsageError(SHARD_WITHDRAWN)
    manifest = load_manifest(args.manifest)
    if args.report is not None:
        _check_writable(args.report)
    options = RunOptions(jobs=tuple(args.job), dry_run=args.dry_run, report=args.report,
                         verify_existing=args.verify_existing, state_dir=args.state_dir,
                         catalog=args.catalog, workers=args.workers, cluster=args.cluster)
    progress = make_progress(enabled=not (args.no_progress or args.quiet or args.dry_run))
    result = await run_manifest(manifest, options, progress, out=_out)
    _finish_lines(result, dry_run=args.dry_run, quiet=args.quiet)
    if args.catalog and not args.dry_run and not result.interrupted:
        await asyncio.to_thread(_catalog_after, manifest.archive, args.state_dir, args.quiet)
    return result.exit_code


async def catalog(args: argparse.Namespace) -> int:
    """``assetvault catalog``: (re)build the browsable catalog of an archive."""
    try:
        result = await asyncio.to_thread(build_catalog_at, location_of(args.archive),
                                         args.state_dir)
    except (OSError, sqlite3.Error) as exc:  # a full disk, a read-only archive, a bad state
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"assetvault: error: the catalog of {args.archive} could not be built: "
              f"{type(exc).__name__}: {detail}; the archive itself is unchanged", file=sys.stderr)
        return 1
    if not args.quiet:
        _catalog_lines(result)
    return 0


def build_catalog_at(location: Location, state_dir: Path | None) -> BuildResult:
    """The catalog of the archive at ``location`` (a folder, or an object-store URL whose
    state is this machine's working copy or the snapshot the archive carries)."""
    from .catalog import build_catalog
    from .storage import LocalStorage

    if isinstance(location, StoreUrl):
        with tempfile.TemporaryDirectory(prefix="assetvault-catalog-") as scratch:
            database = _store_state(location, state_dir, Path(scratch))
            storage = open_object_store(location, Path(scratch))
            return build_catalog(storage, database)
    paths = ArchivePaths(location)
    if not (location / "bagit.txt").is_file() or not paths.database.is_file():
        raise errors.UsageError(
            f"{location}: not an archive (an archive has bagit.txt and {STATE_DIR}/"
            f"{paths.database.name}); run `assetvault run MANIFEST` into it first")
    return build_catalog(LocalStorage(location), paths.database)


def _catalog_lines(result: BuildResult) -> None:
    print(f"catalog: {result.records} records in {result.groups} groups, {result.pages} pages; "
          f"previews: {result.rendered} rendered, {result.reused} kept from before, "
          f"{result.placeholders} files without one; {result.seconds:.1f} s")
    print(f"open: {result.index}")


def _catalog_after(location: Location, state_dir: Path | None, quiet: bool) -> bool:
    """``run --catalog`` and the demo: a catalog that cannot be built is a warning, never the
    run's failure (the bag is sealed before and untouched by it)."""
    try:
        result = build_catalog_at(location, state_dir)
    except Exception as exc:  # any failure here is reported, never raised
        message = exc.message if isinstance(exc, errors.AssetvaultError) else (
            f"{type(exc).__name__}: {exc}")
        print(f"assetvault: warning: the catalog was not built: {message}", file=sys.stderr)
        return False
    if not quiet:
        _catalog_lines(result)
    return True


def _check_writable(report: Path) -> None:
    """Refuse a --report path that cannot be written before the run, not after it."""
    folder = report.parent if str(report.parent) else Path(".")
    if report.is_dir():
        raise errors.UsageError(f"--report {report}: that is a folder; name a file")
    if not folder.is_dir():
        raise errors.UsageError(f"--report {report}: the folder {folder} does not exist")
    if report.is_symlink() or (report.exists() and not report.is_file()):
        return  # a link, FIFO or device the user chose: written through at the end
    existed = report.exists()
    try:
        with open(report, "a", encoding="utf-8"):
            pass  # appending nothing: an existing report is left as it is
    except OSError as exc:
        raise errors.UsageError(f"--report {report}: cannot be written ({exc.strerror})") from None
    if not existed:
        report.unlink(missing_ok=True)


def _finish_lines(result: RunResult, *, dry_run: bool, quiet: bool) -> None:
    if dry_run:
        up = sum(s.up_to_date for s in result.stats)
        print(f"would fetch {result.planned_files} files: {result.planned_bytes} bytes known, "
              f"{result.planned_unknown} of unknown size; {up} up to date", flush=True)
    elif not quiet:
        print(summary_table(result), flush=True)
    for failure in result.failures[:SHOWN_FAILURES]:
        where = f" ({failure.url})" if failure.url else ""
        print(f"failed: {failure.job}: {failure.key}{where}: {failure.error}", file=sys.stderr)
    if len(result.failures) > SHOWN_FAILURES:
        print(f"... and {len(result.failures) - SHOWN_FAILURES} more failures (see the report)",
              file=sys.stderr)
    if result.fatal:
        print(f"assetvault: error: {result.fatal}", file=sys.stderr)
    if result.interrupted:
        print("assetvault: interrupted; state is kept, run again to resume", file=sys.stderr)
    if result.report_path is not None and not quiet:
        print(f"report: {result.report_path}")


async def verify(args: argparse.Namespace) -> int:
    """``assetvault verify``: every payload file against the manifest; 1 naming each problem."""
    location = location_of(args.archive)
    if isinstance(location, StoreUrl):
        with tempfile.TemporaryDirectory(prefix="assetvault-verify-") as scratch:
            result = await asyncio.to_thread(_verify_store, location, Path(scratch), args.fast)
        return _verdict(result, args)
    root = location
    if not (root / "bagit.txt").is_file():
        raise errors.UsageError(f"{root}: not an archive (no bagit.txt there)")
    database = ArchivePaths(root).database if args.fast else None
    with _recorded_sizes(database) as sizes:
        result = await asyncio.to_thread(verify_bag, root, fast=args.fast, sizes=sizes)
    return _verdict(result, args)


@contextlib.contextmanager
def _recorded_sizes(database: Path | None) -> Iterator[Sizes | None]:
    """Each payload file's size as its run recorded it (None without a state database):
    what ``verify --fast`` holds every file to, where Payload-Oxum's total alone would let
    a longer and a shorter file cancel out."""
    if database is None or not database.is_file():
        yield None
        return
    store = Store(database, readonly=True)
    try:
        yield lambda p: store.size_of(p.removeprefix("data/"))
    finally:
        store.close()


def _verify_store(url: StoreUrl, scratch: Path, fast: bool) -> VerifyResult:
    """An object-store bag: every object streamed through SHA-256 (``fast``: sizes from the
    listing and the digests stored with each object)."""
    storage = open_object_store(url, scratch)
    check_store(storage)
    if storage.size("bagit.txt") is None:
        raise errors.UsageError(f"{url}: not an archive (no bagit.txt there)")
    digests = None
    database = None
    if fast:
        def digests(key: str) -> str | None:
            # An object without our digest was not written by assetvault: a mismatch.
            return storage.metadata(key).get("sha256") or "(none stored)"
        database = scratch / "state.sqlite"  # the archive's state snapshot, if it has one
        restore_snapshot(database, storage)
    with _recorded_sizes(database) as sizes:
        return verify_storage(storage, fast=fast, digests=digests, sizes=sizes)


def _verdict(result: VerifyResult, args: argparse.Namespace) -> int:
    for label, names in (("missing", result.missing), ("extra", result.extra),
                         ("mismatch", result.mismatched), ("problem", result.problems)):
        for name in names:
            print(f"{label}: {name}")
    if result.ok:
        if not args.quiet:
            print(f"ok: {result.checked} files verified" + (" (sizes only)" if args.fast else ""))
        return 0
    return 1


def status(args: argparse.Namespace) -> int:
    """``assetvault status``: what the state database knows."""
    location = location_of(args.archive)
    if isinstance(location, StoreUrl):
        with tempfile.TemporaryDirectory(prefix="assetvault-status-") as scratch:
            return _status(_store_state(location, args.state_dir, Path(scratch)))
    paths = ArchivePaths(location)
    if not paths.database.is_file():
        raise errors.UsageError(f"{args.archive}: not an archive (no {paths.database.name} in "
                                f"{paths.state})")
    return _status(paths.database)


def location_of(text: str) -> Location:
    """A folder, or an object-store URL, as the command line names an archive."""
    try:
        url = parse_store_url(text)
    except ValueError as exc:
        raise errors.UsageError(str(exc)) from None
    return Path(text) if url is None else url


def _store_state(url: StoreUrl, state_dir: Path | None, scratch: Path) -> Path:
    """The state of an object-store archive: this machine's working copy if it has one,
    else the snapshot the archive carries (downloaded into ``scratch``)."""
    local = Workspace(work_folder(url, state_dir)).database
    if local.is_file():
        return local
    storage = open_object_store(url, scratch)
    check_store(storage)
    copy = scratch / "state.sqlite"
    if not restore_snapshot(copy, storage):
        raise errors.UsageError(f"{url}: not an archive (no {SNAPSHOT} there)")
    return copy


def _status(database: Path) -> int:
    store = Store(database, readonly=True)
    try:
        print("items per job and state:")
        for job, state, n in store.counts():
            print(f"  {job:<24} {state:<10} {n:>9}")
        print("last runs:")
        for run_id, started, finished, code in store.last_runs():
            print(f"  #{run_id:<5} started {started}  finished {finished or '-':<19}  "
                  f"exit {code if code is not None else '-'}")
        failures = store.failures()
        if failures:
            print("failures of the last run of each item:")
            for job, key, url, error in failures:
                print(f"  {job}: {key} ({url or '-'}): {error}")
        _last_run_troubles(store.last_report(), {key for _, key, _, _ in failures})
    finally:
        store.close()
    return 0


def _last_run_troubles(report: tuple[int, str] | None, shown: set[str]) -> None:
    """What the last run's report holds beyond the items' own failures: listings that
    failed (nothing under them was marked gone) and jobs that could not go on."""
    if report is None:
        return
    run_id, text = report
    try:
        found = json.loads(text)
        jobs = [(str(j["name"]), str(j["error"])) for j in found["jobs"] if j.get("error")]
        listings = [(str(f["job"]), str(f["key"]), f.get("url"), str(f["error"]))
                    for f in found["failures"] if f["key"] not in shown]
    except (ValueError, KeyError, TypeError):
        return  # a report from another version: the items' failures above still stand
    if not (jobs or listings):
        return
    print(f"listing failures and job errors of the last run (#{run_id}):")
    for name, error in jobs:
        print(f"  {name}: {error}")
    for job, key, url, error in listings[:SHOWN_FAILURES]:
        print(f"  {job}: {key} ({url or '-'}): {error}")
    if len(listings) > SHOWN_FAILURES:
        print(f"  ... and {len(listings) - SHOWN_FAILURES} more (see the run's report)")


def sandbox(args: argparse.Namespace) -> int:
    """``assetvault sandbox``: serve both APIs and files until interrupted."""
    from .sandbox import Dataset, DatasetConfig, serve

    config = DatasetConfig(seed=args.seed, organizations=args.organizations,
                           assets_per_org=args.assets_per_org, products=args.products,
                           hostile=args.hostile)

    def ready(api_url: str, files_url: str) -> None:
        print(f"sandbox: APIs at {api_url} (Spectrum and OnPremise), files at {files_url}")
        print(f"  spectrum token: {config.spectrum_token}  onpremise api_key: "
              f"{config.onpremise_api_key}")
        print(f"  organizations: {', '.join(Dataset(config).organization_ids())}")
        print(f"  whole accounts (products: all): {api_url}/products.json, /beers.json, "
              "/menu_items.json", flush=True)

    try:
        asyncio.run(serve(config, port=args.port, faults=args.faults, ready=ready))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise errors.UsageError(f"cannot serve on port {args.port}: {exc.strerror}") from None
    except ValueError as exc:
        raise errors.UsageError(f"--faults: {exc}") from None
    return 0


async def demo(args: argparse.Namespace) -> int:
    """``assetvault demo``: start the sandbox in-process, archive it into DIR, verify."""
    from .sandbox import DatasetConfig, Sandbox

    config = DatasetConfig()
    location = location_of(args.dir)
    archive = location.resolve() if isinstance(location, Path) else location
    async with Sandbox(config) as box:
        manifest = demo_manifest(archive, box.api_url, box.dataset.organization_ids(),
                                 {k: box.dataset.owner_ids(k) for k in ("products", "beers")},
                                 config.spectrum_token, config.onpremise_api_key)
        if not args.quiet:
            print(f"demo: sandbox at {box.api_url}, files at {box.files_url}; "
                  f"archiving into {manifest.archive}")
        progress = make_progress(enabled=not (args.no_progress or args.quiet))
        result = await run_manifest(manifest, RunOptions(), progress, out=_out)
    _finish_lines(result, dry_run=False, quiet=args.quiet)
    if isinstance(archive, StoreUrl):
        with tempfile.TemporaryDirectory(prefix="assetvault-verify-") as scratch:
            check = await asyncio.to_thread(_verify_store, archive, Path(scratch), False)
    else:
        check = await asyncio.to_thread(verify_bag, archive)
    if not args.quiet:
        state = "ok" if check.ok else "FAILED"
        print(f"verify: {state}, {check.checked} payload files re-hashed against the bag manifest")
        look = f"ls {archive}/data" if isinstance(archive, Path) else f"assetvault verify {archive}"
        print(f"look inside: {look}; assetvault status {archive}")
    await asyncio.to_thread(_catalog_after, archive, None, args.quiet)
    return result.exit_code if check.ok else 1


def demo_manifest(archive: Location, api_url: str, organizations: list[str],
                  owners: dict[str, list[str]], token: str, api_key: str) -> Manifest:
    """The demo's jobs: every organization and owner the sandbox serves; the products as
    ``products: all`` would list them (the account's list), the beers by id."""
    settings = Settings(rate_limit=20.0, burst=20)
    return Manifest(
        path=Path("<demo>"),
        archive=archive,
        jobs=(
            SpectrumJob(name="spectrum-demo", settings=settings, token=token, client="carhartt",
                        organizations=tuple(organizations), base_url=api_url),
            OnpremiseJob(name="onpremise-demo", settings=settings, api_key=api_key,
                         base_url=api_url, whole=frozenset({"products"}),
                         beers=tuple(owners["beers"])),
        ),
    )
