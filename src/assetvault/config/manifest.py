"""The job manifest (SPEC §2): YAML → typed job specs, with defaults layered in once.

Every problem is a ManifestError naming the file, the job (its name, ``defaults``, or ``jobs[i]``
counting from 0 while the name is unknown), the key and the line. Secrets (``token``, ``api_key``,
header values) are never quoted in a message. Loading only reads: nothing is created on disk.

The work is split three ways: ``manifest_yaml`` turns text into nodes that know their lines,
``manifest_checks`` turns one node into one typed value, and this module knows the keys.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any, TypedDict, TypeVar

from msgspec.structs import replace

from assetvault.config import checks as check
from assetvault.config import endpoints, values
from assetvault.config.archive import archive_location
from assetvault.config.checks import Check, Where, parse_size
from assetvault.config.jobs import (
    LISTABLE_KINDS,
    ONPREMISE_KINDS,
    SPECTRUM_BURST,
    SPECTRUM_RATE_LIMIT,
    Job,
    Manifest,
    OnpremiseJob,
    Settings,
    SpectrumJob,
    UrlsJob,
    shared_folder,
)
from assetvault.config.yaml_nodes import Map, Scalar, parse, read_text
from assetvault.errors import ManifestError
from assetvault.redact import Redactor

__all__ = ["load_manifest", "parse_size"]

T = TypeVar("T")

# Tables of key → checker. Values come back as Any only to go straight into dataclasses.replace:
# each checker's return type is the field's type, which one table cannot say key by key.
SETTINGS: Mapping[str, Check[Any]] = {
    "concurrency": partial(check.whole, minimum=1),
    "per_host": partial(check.whole, minimum=1),
    "rate_limit": partial(check.number, minimum=0),
    "burst": partial(check.whole, minimum=1),
    "file_rate_limit": partial(check.number, minimum=0),
    "file_burst": partial(check.whole, minimum=1),
    "bandwidth": partial(check.size, minimum=0),
    "retries": partial(check.whole, minimum=0),
    "timeout": partial(check.number, minimum=0, inclusive=False),
    "min_speed": partial(check.size, minimum=0),
    "max_file_size": partial(check.size, minimum=1),
}
TOP_KEYS = frozenset({"version", "archive", "archive_options", "defaults", "jobs"})
COMMON_KEYS = frozenset({"name", "source", "allow_hosts", *SETTINGS})
_API_KEYS = frozenset({"base_url", "headers"})
SOURCE_KEYS: Mapping[str, frozenset[str]] = {
    "spectrum": _API_KEYS | {"token", "client", "organizations", "include", "formats",
                             "include_inactive", "page_size"},
    "onpremise": _API_KEYS | {"api_key", *ONPREMISE_KINDS, "include", "versions",
                              "include_deleted", "since", "page_size"},
    "urls": frozenset({"urls_file"}),
}
SECRET_KEYS = frozenset({"token", "api_key"})
# Said when a credential lands on the wrong kind of job: it is almost always the other one.
_CREDENTIAL_OF = {"spectrum": "token", "onpremise": "api_key"}
_MERGE_KEY = "YAML merge keys ('<<') are not supported; put shared settings under 'defaults'"
_SHARD = ("shard is withdrawn: every shard listed every API again and sealed a bag of its own; "
          "one run now lists once and spreads the downloads with 'assetvault run --workers N' "
          "or '--cluster ADDRESS'")


def load_manifest(path: Path, environ: Mapping[str, str] | None = None) -> Manifest:
    """Read, check and type the manifest at ``path``; ``${...}`` comes from ``environ``
    (default ``os.environ``). Raises ManifestError for every problem."""
    env = os.environ if environ is None else environ
    source = read_text(path)
    try:
        return _load(path, source, env)
    except ManifestError as exc:
        # A last guard: whatever a message quotes, no value of a ${VAR} the file uses (any of
        # them may be a token) survives in it.
        used = {m.group(1) for m in _VAR_REF.finditer(source)}
        scrub = Redactor(env[name] for name in used if env.get(name))
        clean = scrub(exc.message)
        if clean != exc.message:
            exc.message = clean
            exc.args = (clean,)
        raise


_VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def _load(path: Path, source: str, env: Mapping[str, str]) -> Manifest:
    where = Where(str(path), env)
    root = parse(source, where.file)
    if root is None:
        raise where.error("the manifest is empty; it needs at least a 'jobs:' list", None)
    top = check.mapping(root, where, "a mapping with the keys version, archive, defaults and jobs")
    for entry in top.entries.values():
        if entry.key not in TOP_KEYS:
            raise where.at(entry.key).error(_top_key_problem(entry.key), entry.key_line)
    folder = path.absolute().parent
    _check_version(top, where)
    archive = archive_location(top, where, folder)
    defaults = _defaults(top, where)
    return Manifest(path=path.absolute(), archive=archive, jobs=_jobs(top, where, folder, defaults))


def _top_key_problem(key: str) -> str:
    if key == "<<":
        return _MERGE_KEY
    if key == "shard":
        return _SHARD
    if key in SETTINGS:
        return "settings go under 'defaults:' (for every job) or inside a job, not at the top"
    if key in COMMON_KEYS or any(key in keys for keys in SOURCE_KEYS.values()):
        return "this is a job key; put it inside a job under 'jobs:'"
    return "unknown top-level key" + check.did_you_mean(key, TOP_KEYS)


def _check_version(top: Map, where: Where) -> None:
    # A missing version means 1: the only version there is, and SPEC §2's own examples may omit it.
    entry = top.entries.get("version")
    if entry is None:
        return
    w = where.at("version")
    if check.whole(check.value_of(entry, w), w, minimum=0) != 1:
        raise w.error("this assetvault reads manifest version 1 only; write 'version: 1'",
                      entry.value.line)


def _defaults(top: Map, where: Where) -> dict[str, Any]:
    entry = top.entries.get("defaults")
    # An empty `defaults:` (every line commented out) is null: the same as none.
    if entry is None or (isinstance(entry.value, Scalar) and entry.value.tag == "null"):
        return {}
    node = check.mapping(entry.value, where.at("defaults"), "a mapping of settings")
    w = replace(where, job="defaults")
    for item in node.entries.values():
        if item.key not in SETTINGS:
            raise w.at(item.key).error(_defaults_key_problem(item.key), item.key_line)
    return _settings(node, w)


def _defaults_key_problem(key: str) -> str:
    if key == "<<":
        return _MERGE_KEY
    if key == "shard":
        return _SHARD
    if key in COMMON_KEYS or any(key in keys for keys in SOURCE_KEYS.values()):
        return "this is a job key, not a setting; set it inside each job that needs it"
    return "unknown setting" + check.did_you_mean(key, SETTINGS)


def _settings(node: Map, where: Where) -> dict[str, Any]:
    return {e.key: SETTINGS[e.key](check.value_of(e, where.at(e.key)), where.at(e.key))
            for e in node.entries.values() if e.key in SETTINGS}


def _jobs(top: Map, where: Where, folder: Path, defaults: dict[str, Any]) -> tuple[Job, ...]:
    entry = top.entries.get("jobs")
    w = where.at("jobs")
    if entry is None:
        raise w.error("missing required key: list the jobs to run under 'jobs:'", top.line)
    nodes = check.nonempty(check.value_of(entry, w, required=True), w, "[{name: ..., source: ...}]",
                           "list at least one job under 'jobs:'")
    seen: dict[str, int] = {}
    out: list[Job] = []
    for index, node in enumerate(nodes):
        unnamed = replace(where, job=f"jobs[{index}]")
        if not isinstance(node, Map):
            raise unnamed.error("each job must be a mapping with name, source and the source's "
                                f"keys, got {check.describe(node, unnamed)}", node.line)
        name, line = _job_name(node, unnamed)
        named = replace(where, job=name)
        if name in seen:
            raise named.at("name").error(f"duplicate job name: used on lines {seen[name]} and "
                                         f"{line}; give each job its own name", line)
        seen[name] = line
        check.no_duplicates(node, named)
        job = _job(node, named, folder, defaults)
        for earlier in out:
            shared = shared_folder(earlier, job)
            if shared is not None:
                raise named.at("base_url").error(
                    f"jobs {earlier.name!r} and {name!r} both archive data/{shared}/ but from "
                    f"different hosts ({_base(earlier)} and {_base(job)}): their files would "
                    "overwrite each other's in one archive. Archive each host into an archive "
                    "of its own (another manifest with another archive:), or list different "
                    "organizations or products", _line_of(node, "base_url", line))
        out.append(job)
    return tuple(out)


def _line_of(node: Map, key: str, otherwise: int) -> int:
    entry = node.entries.get(key)
    return otherwise if entry is None else entry.key_line


def _base(job: Job) -> str:
    return getattr(job, "base_url", "")


def _job_name(node: Map, where: Where) -> tuple[str, int]:
    entry = node.entries.get("name")
    w = where.at("name")
    if entry is None:
        raise w.error("missing required key: every job needs a unique name of letters, digits, "
                      "'.', '_' and '-'", node.line)
    return check.text(check.value_of(entry, w, required=True), w, pattern=check.SLUG,
                      expected="a job name of letters, digits, '.', '_' and '-'"), entry.key_line


def _source(node: Map, where: Where) -> str:
    entry = node.entries.get("source")
    w = where.at("source")
    if entry is None:
        raise w.error("missing required key: say which API the job reads: spectrum, onpremise or "
                      "urls", node.line)
    value = check.text(check.value_of(entry, w, required=True), w)
    if value not in SOURCE_KEYS:
        raise w.error(f"{value!r} is not a source" + check.did_you_mean(value, SOURCE_KEYS),
                      entry.value.line)
    return value


def _check_job_keys(node: Map, where: Where, source: str) -> None:
    valid = COMMON_KEYS | SOURCE_KEYS[source]
    for entry in node.entries.values():
        if entry.key not in valid:
            raise where.at(entry.key).error(_job_key_problem(entry.key, source, valid),
                                            entry.key_line)


def _job_key_problem(key: str, source: str, valid: frozenset[str]) -> str:
    if key == "<<":
        return _MERGE_KEY
    if key == "shard":
        return _SHARD
    owners = sorted(s for s, keys in SOURCE_KEYS.items() if key in keys)
    if not owners:
        return "unknown key" + check.did_you_mean(key, valid)
    hint = f" (a {source} job's credential is {_CREDENTIAL_OF[source]!r})" if (
        key in SECRET_KEYS and source in _CREDENTIAL_OF) else ""
    return (f"this key belongs to {' and '.join(owners)} jobs, but this job's source is "
            f"{source!r}; remove it or fix the source{hint}")


class _Common(TypedDict):
    name: str
    settings: Settings
    headers: tuple[tuple[str, str], ...]
    allow_hosts: tuple[str, ...]


class _Fields:
    """The keys of one job, each read through a checker with the right Where."""

    def __init__(self, node: Map, where: Where) -> None:
        self.node = node
        self.where = where

    def need(self, key: str, checker: Check[T], why: str) -> T:
        entry = self.node.entries.get(key)
        w = self.where.at(key, secret=key in SECRET_KEYS)
        if entry is None:
            raise w.error(f"missing required key: {why}", self.node.line)
        return checker(check.value_of(entry, w, required=True), w)

    def optional(self, table: Mapping[str, Check[Any]]) -> dict[str, Any]:
        """The checked values of the keys of ``table`` that the job sets."""
        out: dict[str, Any] = {}
        for key, checker in table.items():
            entry = self.node.entries.get(key)
            if entry is not None:
                w = self.where.at(key, secret=key == "headers")
                out[key] = checker(check.value_of(entry, w), w)
        return out


def _job(node: Map, where: Where, folder: Path, defaults: dict[str, Any]) -> Job:
    source = _source(node, where)
    _check_job_keys(node, where, source)
    fields = _Fields(node, where)
    common = fields.optional({"headers": endpoints.headers, "allow_hosts": endpoints.hosts})
    base = _Common(name=str(where.job), settings=_layered(defaults, node, where, source),
                   headers=(), allow_hosts=())
    if source == "spectrum":
        job: Job = _spectrum(fields, base)
    elif source == "onpremise":
        job = _onpremise(fields, base)
    else:
        job = UrlsJob(**base, urls_file=fields.need(
            "urls_file", partial(values.urls_file, folder=folder),
            "give the path of a text file (one URL a line) or a CSV with columns url,path"))
    return replace(job, **common)


def _layered(defaults: dict[str, Any], node: Map, where: Where, source: str) -> Settings:
    own = _settings(node, where)
    merged = {**defaults, **own}
    if source == "spectrum":
        # Spectrum answers 403 past 100 requests a minute (and a key that keeps at it risks a
        # ban): `defaults`, written for every job, may only lower its safe limits; a rate or
        # burst set in the spectrum job itself is taken as meant.
        for key, safe in (("rate_limit", SPECTRUM_RATE_LIMIT), ("burst", SPECTRUM_BURST)):
            if key not in own:
                wanted = defaults.get(key, safe)
                merged[key] = safe if wanted <= 0 else min(wanted, safe)
    return replace(Settings(), **merged)


def _spectrum(fields: _Fields, base: _Common) -> SpectrumJob:
    job = SpectrumJob(
        **base,
        token=fields.need("token", check.credential, "the Spectrum API token, e.g. "
                          "token: ${SPECTRUM_API_TOKEN}"),
        client=fields.need("client", check.slug, "the client handle, e.g. client: carhartt"),
        organizations=fields.need(
            "organizations", values.organizations,
            'the organization ids, e.g. organizations: ["7000000000000300322"]'),
    )
    return replace(job, **fields.optional({
        "base_url": endpoints.base_url,
        "include": partial(check.choices, allowed=("original", "outputs")),
        "formats": values.formats,
        "include_inactive": check.boolean,
        "page_size": partial(check.whole, minimum=1, maximum=1000),
    }))


def _onpremise(fields: _Fields, base: _Common) -> OnpremiseJob:
    job = OnpremiseJob(**base, api_key=fields.need(
        "api_key", check.credential, "the OnPremise API key, e.g. api_key: ${ONPREMISE_API_KEY}"))
    owners = fields.optional({kind: check.ids_or_all if kind in LISTABLE_KINDS else values.unlisted
                              for kind in ONPREMISE_KINDS})
    whole = frozenset(kind for kind, value in owners.items() if value == check.ALL)
    job = replace(job, whole=whole, **{k: v for k, v in owners.items() if k not in whole},
                  **fields.optional({
                      "base_url": endpoints.base_url,
                      "include": partial(check.choices, allowed=("original", "versions")),
                      "versions": values.versions,
                      "include_deleted": check.boolean,
                      "since": check.since,
                      "page_size": partial(check.whole, minimum=1, maximum=1000),
                  }))
    if not job.owners() and not job.whole:
        raise fields.where.at("products").error(
            "the job lists no ids; give at least one under products, beers, restaurants or "
            "menu_items, e.g. products: [1001, 1002], or archive the whole account with "
            "products: all", fields.node.line)
    return job
