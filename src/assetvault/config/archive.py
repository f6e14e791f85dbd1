"""The manifest's ``archive:`` (a folder, or an object-store URL) and ``archive_options:``."""

from __future__ import annotations

from pathlib import Path

from ..storage.location import OPTION_KEYS, Location, StoreUrl, parse_store_url
from . import checks as check
from .checks import Where
from .yaml_nodes import Map, Node

BOOLEAN_OPTIONS = frozenset({"allow_http", "virtual_hosted_style"})


def archive_location(top: Map, where: Where, folder: Path) -> Location:
    """Where the archive is: an object-store URL with its options, or a folder (relative
    paths are relative to the manifest's folder)."""
    entry = top.entries.get("archive")
    w = where.at("archive")
    raw = "./archive"
    if entry is not None:
        raw = check.text(check.value_of(entry, w), w,
                         expected="a folder path or an s3://BUCKET/PREFIX URL")
    line = None if entry is None else entry.value.line
    try:
        url = parse_store_url(raw)
    except ValueError as exc:
        raise w.error(str(exc), line) from None
    options = top.entries.get("archive_options")
    if url is None:
        if options is not None:
            raise where.at("archive_options").error(
                "archive_options apply to an object-store archive (archive: s3://BUCKET/PREFIX); "
                "remove them for a local folder", options.key_line)
        return _folder(raw, folder, w, line)
    if options is None:
        return url
    return StoreUrl(url.scheme, url.bucket, url.prefix, _options(options.value, where))


def _options(node: Node, where: Where) -> tuple[tuple[str, str], ...]:
    w = where.at("archive_options")
    found = check.mapping(node, w, "a mapping of " + ", ".join(OPTION_KEYS))
    out = []
    for entry in found.entries.values():
        if entry.key not in OPTION_KEYS:
            raise w.at(entry.key).error("unknown archive option" + check.did_you_mean(
                entry.key, OPTION_KEYS) + f"; the options are {', '.join(OPTION_KEYS)}",
                entry.key_line)
        at = w.at(entry.key)
        if entry.key in BOOLEAN_OPTIONS:
            value = "true" if check.boolean(entry.value, at) else "false"
        else:
            value = check.text(entry.value, at)
        out.append((entry.key, value))
    return tuple(out)


def _folder(raw: str, folder: Path, w: Where, line: int | None) -> Path:
    archive = (folder / Path(raw).expanduser()).resolve()
    blocker = _nearest_existing(archive)
    if blocker is not None and not blocker.is_dir():
        if blocker == archive:
            raise w.error(f"'{archive}' exists and is a file; the archive must be a folder (it is "
                          "created when missing): point archive at another path", line)
        raise w.error(f"'{blocker}' is a file, so the archive folder '{archive}' cannot be created "
                      "inside it; point archive at another path", line)
    return archive


def _nearest_existing(path: Path) -> Path | None:
    try:
        return next((p for p in (path, *path.parents) if p.exists()), None)
    except OSError:
        return None  # unreadable: let the run report it with the real error
