"""The manifest: SPEC §2 with line-accurate errors that never show a secret."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from assetvault.config.jobs import (
    GIB,
    SPECTRUM_BURST,
    SPECTRUM_RATE_LIMIT,
    Manifest,
    OnpremiseJob,
    Settings,
    SpectrumJob,
    UrlsJob,
)
from assetvault.config.manifest import load_manifest, parse_size
from assetvault.errors import ManifestError

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sEcReT-9f8e7d6c5b4a"

# Line numbers matter in these tests: the job's keys start on line 3.
SPECTRUM = """\
version: 1
jobs:
  - name: carhartt
    source: spectrum
    token: tok
    client: carhartt
    organizations: ["7000000000000300322"]
"""
ONPREMISE = """\
version: 1
jobs:
  - name: wine
    source: onpremise
    api_key: key
    products: [1001]
"""


def write(tmp_path: Path, text: str, name: str = "jobs.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, environ: Mapping[str, str] | None = None) -> Manifest:
    return load_manifest(write(tmp_path, text), {} if environ is None else environ)


def fails(tmp_path: Path, text: str, environ: Mapping[str, str] | None = None) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        load(tmp_path, text, environ)
    return info.value


def assert_where(error: ManifestError, tmp_path: Path, *, job: str | None, key: str | None,
                 line: int | None) -> None:
    assert (error.job, error.key, error.line) == (job, key, line), str(error)
    assert error.file == str(tmp_path / "jobs.yaml")
    assert str(error).startswith(str(tmp_path / "jobs.yaml"))
    if line is not None:
        assert f"line {line}" in str(error)
    assert "\n" not in str(error)


def with_keys(base: str, extra: str) -> str:
    """``base`` plus ``extra``, without the job keys of ``base`` that ``extra`` sets again."""
    keys = {line.split(":")[0] for line in extra.splitlines() if line[4:5].isalnum()}
    kept = [line for line in base.splitlines(keepends=True) if line.split(":")[0] not in keys]
    return "".join(kept) + extra


def spectrum(tmp_path: Path, extra: str = "", environ: Mapping[str, str] | None = None,
             defaults: str = "") -> SpectrumJob:
    text = with_keys(SPECTRUM, extra)
    if defaults:
        text = text.replace("jobs:\n", f"defaults:\n{defaults}jobs:\n", 1)
    job = load(tmp_path, text, environ).jobs[0]
    assert isinstance(job, SpectrumJob)
    return job


# --- the example ------------------------------------------------------------------------------


def test_example_loads_without_environment_and_creates_nothing() -> None:
    before = sorted(p.name for p in ROOT.iterdir())
    manifest = load_manifest(ROOT / "jobs.example.yaml", {})
    assert sorted(p.name for p in ROOT.iterdir()) == before
    assert manifest.archive == ROOT / "archive"
    carhartt, wine, legacy = manifest.jobs
    assert isinstance(carhartt, SpectrumJob)
    assert carhartt.token == "sandbox-spectrum-token"
    assert carhartt.base_url == "http://127.0.0.1:8765"
    assert carhartt.organizations == ("7000000000000300322",)
    assert (carhartt.settings.rate_limit, carhartt.settings.burst) == (1.5, 5)
    assert isinstance(wine, OnpremiseJob)
    assert wine.api_key == "sandbox-onpremise-key"
    assert wine.products == ("1001", "1002") and wine.beers == ("2001",)
    assert wine.page_size == 100 and wine.whole == frozenset()
    assert isinstance(legacy, UrlsJob)
    assert legacy.urls_file == ROOT / "examples" / "legacy-urls.csv"
    assert legacy.urls_file.read_text().startswith("url,path\n")


def test_example_takes_credentials_from_the_environment() -> None:
    env = {"SPECTRUM_API_TOKEN": "real-token", "ONPREMISE_API_KEY": "real-key"}
    manifest = load_manifest(ROOT / "jobs.example.yaml", env)
    assert manifest.secrets() == ("real-token", "real-key")


# --- layering -----------------------------------------------------------------------------


def test_minimal_spectrum_job_gets_defaults_and_spectrum_rate(tmp_path: Path) -> None:
    manifest = load(tmp_path, SPECTRUM)
    assert manifest.archive == tmp_path / "archive"
    assert not (tmp_path / "archive").exists()
    assert manifest.path == tmp_path / "jobs.yaml"
    job = manifest.jobs[0]
    assert job == SpectrumJob(
        name="carhartt", token="tok", client="carhartt", organizations=("7000000000000300322",),
        settings=Settings(rate_limit=SPECTRUM_RATE_LIMIT, burst=SPECTRUM_BURST))


def test_job_overrides_defaults_and_defaults_override_built_ins(tmp_path: Path) -> None:
    job = spectrum(tmp_path, "    per_host: 2\n    concurrency: 3\n",
                   defaults="  concurrency: 4\n  bandwidth: 1.5MiB\n  timeout: 2.5\n")
    assert job.settings == Settings(concurrency=3, per_host=2, bandwidth=1572864, timeout=2.5,
                                    rate_limit=SPECTRUM_RATE_LIMIT, burst=SPECTRUM_BURST)


def test_spectrum_rate_is_raised_only_in_the_job_and_lowered_by_defaults(tmp_path: Path) -> None:
    # SPEC 2's own example sets `defaults: rate_limit: 10` beside a spectrum job: written for
    # every job, it must not take Spectrum past 100 requests a minute (403s, a key at risk).
    for faster in ("  rate_limit: 0\n  burst: 50\n", "  rate_limit: 10\n  burst: 10\n"):
        job = spectrum(tmp_path, defaults=faster)
        assert (job.settings.rate_limit, job.settings.burst) == (SPECTRUM_RATE_LIMIT,
                                                                 SPECTRUM_BURST)
    job = spectrum(tmp_path, defaults="  rate_limit: 0.5\n  burst: 2\n")
    assert (job.settings.rate_limit, job.settings.burst) == (0.5, 2)
    job = spectrum(tmp_path, "    burst: 2\n")
    assert (job.settings.rate_limit, job.settings.burst) == (SPECTRUM_RATE_LIMIT, 2)
    job = spectrum(tmp_path, "    rate_limit: 0\n    burst: 20\n", defaults="  rate_limit: 1\n")
    assert (job.settings.rate_limit, job.settings.burst) == (0.0, 20)


def test_other_sources_keep_the_general_rate(tmp_path: Path) -> None:
    job = load(tmp_path, ONPREMISE).jobs[0]
    assert (job.settings.rate_limit, job.settings.burst) == (10.0, 10)


def test_empty_defaults_is_allowed(tmp_path: Path) -> None:
    text = SPECTRUM.replace("jobs:\n", "defaults:\n  # concurrency: 4\njobs:\n")
    assert load(tmp_path, text).jobs[0].settings.concurrency == 16


def test_spectrum_optional_keys(tmp_path: Path) -> None:
    text = SPECTRUM.replace('    organizations: ["7000000000000300322"]\n',
                            "    organizations: [7000000000000300322, '12', '12']\n")
    text += ("    base_url: https://staging.example.com/api/\n"
             "    include: [outputs]\n    formats: [.DST, png]\n"
             "    include_inactive: yes\n    page_size: 1000\n"
             "    headers: {X-Version: 1.20, X-Other: text}\n"
             "    allow_hosts: [CDN.example.com, 127.0.0.1]\n"
             "    max_file_size: 2GiB\n")
    job = load(tmp_path, text).jobs[0]
    assert isinstance(job, SpectrumJob)
    assert job.organizations == ("7000000000000300322", "12")
    assert job.base_url == "https://staging.example.com/api"
    assert job.include == {"outputs"} and job.formats == frozenset({"dst", "png"})
    assert job.include_inactive is True and job.page_size == 1000
    # Header values are taken as written: YAML would have made 1.20 the float 1.2.
    assert job.headers == (("X-Version", "1.20"), ("X-Other", "text"))
    assert job.allow_hosts == ("cdn.example.com", "127.0.0.1")
    assert job.settings.max_file_size == 2 * GIB


def test_onpremise_keys(tmp_path: Path) -> None:
    text = ONPREMISE + ("    beers: ['0042', 7]\n    menu_items: [5, 5]\n"
                        "    include: [versions]\n    versions: [web_thumb, large]\n"
                        "    include_deleted: true\n    since: 2024-01-31 23:59:00\n")
    job = load(tmp_path, text).jobs[0]
    assert isinstance(job, OnpremiseJob)
    assert job.owners() == (("products", "1001"), ("beers", "0042"), ("beers", "7"),
                            ("menu_items", "5"))
    assert job.include == {"versions"} and job.versions == frozenset({"web_thumb", "large"})
    assert job.include_deleted is True
    # Unquoted, YAML reads a timestamp; the job keeps the text the API expects.
    assert job.since == "2024-01-31 23:59:00"
    assert job.base_url == "https://dashboard.onpremisewine.com"


def test_ids_keep_leading_zeros_written_as_plain_numbers(tmp_path: Path) -> None:
    job = load(tmp_path, ONPREMISE.replace("[1001]", "[0123]")).jobs[0]
    assert isinstance(job, OnpremiseJob) and job.products == ("0123",)


def test_urls_job_path_is_relative_to_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "u.txt").write_text("http://example.com/a\n")
    text = "jobs:\n  - {name: u, source: urls, urls_file: lists/u.txt}\narchive: out/../arch\n"
    manifest = load_manifest(write(tmp_path, text), {})
    assert manifest.jobs[0] == UrlsJob(name="u", urls_file=tmp_path / "lists" / "u.txt")
    assert manifest.archive == tmp_path / "arch"


# --- interpolation ------------------------------------------------------------------------


def test_interpolation_with_fallback_dollar_and_typed_values(tmp_path: Path) -> None:
    env = {"TOKEN": "from-env", "EMPTY": "", "C": "7"}
    job = spectrum(tmp_path, "    concurrency: ${C:-8}\n    per_host: ${P:-3}\n"
                   "    include_inactive: ${INACTIVE:-true}\n    timeout: ${T:-0.5}\n"
                   "    client: ${EMPTY:-fallback-client}\n"
                   "    headers: {X-Price: 'cost $$5 ${TOKEN}'}\n", env)
    assert job.settings.concurrency == 7 and job.settings.per_host == 3
    assert job.settings.timeout == 0.5 and job.include_inactive is True
    assert job.client == "fallback-client"
    assert job.headers == (("X-Price", "cost $5 from-env"),)


def test_interpolation_of_the_token(tmp_path: Path) -> None:
    job = spectrum(tmp_path, "    token: ${SPECTRUM_API_TOKEN}\n", {"SPECTRUM_API_TOKEN": "t0k"})
    assert job.token == "t0k"


def test_missing_variable_names_it_the_job_key_and_line(tmp_path: Path) -> None:
    text = SPECTRUM.replace("token: tok", "token: Bearer ${SPECTRUM_API_TOKEN}")
    error = fails(tmp_path, text)
    assert_where(error, tmp_path, job="carhartt", key="token", line=5)
    assert "SPECTRUM_API_TOKEN" in str(error) and "${SPECTRUM_API_TOKEN:-" in str(error)


def test_missing_variable_in_defaults(tmp_path: Path) -> None:
    error = fails(tmp_path, "defaults:\n  retries: ${RETRIES}\n" + SPECTRUM.split("\n", 1)[1])
    assert_where(error, tmp_path, job="defaults", key="retries", line=2)
    assert "RETRIES" in str(error)


def test_malformed_reference(tmp_path: Path) -> None:
    error = fails(tmp_path, SPECTRUM.replace("client: carhartt", "client: ${not closed"))
    assert_where(error, tmp_path, job="carhartt", key="client", line=6)
    assert "$$" in str(error)


def test_interpolated_junk_for_a_number(tmp_path: Path) -> None:
    error = fails(tmp_path, SPECTRUM + "    retries: ${R}\n", {"R": "many"})
    assert_where(error, tmp_path, job="carhartt", key="retries", line=8)
    # Never echoed: the same variable could be a token elsewhere in the file.
    assert "many" not in str(error) and "from an environment variable" in str(error)


def test_quoted_number_is_text(tmp_path: Path) -> None:
    error = fails(tmp_path, SPECTRUM + '    concurrency: "8"\n')
    assert_where(error, tmp_path, job="carhartt", key="concurrency", line=8)
    assert "remove the quotes" in str(error)


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ("    concurrency: lots\n", "concurrency", "expected a whole number ≥ 1, got 'lots'"),
        ("    concurrency: true\n", "concurrency", "got 'true' (a yes/no value)"),
        ("    concurrency: 0\n", "concurrency", "≥ 1"),
        ("    retries: 1.5\n", "retries", "whole number ≥ 0"),
        ("    timeout: 0\n", "timeout", "a number > 0"),
        ("    rate_limit: -1\n", "rate_limit", "a number ≥ 0"),
        ("    rate_limit: .nan\n", "rate_limit", "a number ≥ 0"),
        ("    bandwidth: fast\n", "bandwidth", "such as 0, 2000000, 50MB"),
        ("    max_file_size: 0\n", "max_file_size", "≥ 1"),
        ("    page_size: 5000\n", "page_size", "from 1 to 1000"),
        ("    include_inactive: maybe\n", "include_inactive", "true or false, got 'maybe'"),
        ("    include: [originals]\n", "include", "did you mean 'original'?"),
        ("    include: []\n", "include", "the list is empty"),
        ("    formats: png\n", "formats", "expected a list"),
        ("    base_url: ftp://example.com\n", "base_url", "http or https URL"),
        ("    base_url: https://example.com/?a=1\n", "base_url", "no '?'"),
        ("    allow_hosts: [https://cdn.example.com/]\n", "allow_hosts", "no scheme"),
        ("    allow_hosts: []\n", "allow_hosts", "allow no host"),
        ("    headers: [a, b]\n", "headers", "a mapping of header names"),
        ("    client: ../etc\n", "client", "letters, digits"),
        ("    client:\n", "client", "no value"),
        ("    client: [a]\n", "client", "expected a name"),
        ("    client: !secret x\n", None, "tag '!secret'"),
        ("    concurency: 4\n", "concurency", "unknown key; did you mean 'concurrency'?"),
        ("    api_key: k\n", "api_key", "belongs to onpremise jobs"),
        ("    urls_file: a.txt\n", "urls_file", "belongs to urls jobs"),
        ("    <<: {retries: 1}\n", "<<", "merge keys"),
    ],
)
def test_job_value_errors_name_job_key_and_line(tmp_path: Path, extra: str, key: str | None,
                                                 words: str) -> None:
    text = with_keys(SPECTRUM, extra)
    line = text.count("\n")
    error = fails(tmp_path, text)
    if key is None:  # a YAML-level problem: the line is known, the job is not yet
        assert (error.line, error.key) == (line, None)
    else:
        assert_where(error, tmp_path, job="carhartt", key=key, line=line)
    assert words in str(error)


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ("    since: yesterday\n", "since", "last-run or a UTC time"),
        ("    since: 2024-02-30 00:00:00\n", "since", "'2024-02-30 00:00:00'"),
        ("    since: 2024-02-01\n", "since", "YYYY-MM-DD HH:MM:SS"),
        ("    beers: [0x1F]\n", "beers", "an id made of digits, got '0x1F'"),
        ("    beers: [abc]\n", "beers", "got 'abc'"),
        ("    versions: []\n", "versions", "include: [original]"),
        ("    include: [version]\n", "include", "did you mean 'versions'?"),
        ("    formats: [png]\n", "formats", "belongs to spectrum jobs"),
    ],
)
def test_onpremise_value_errors(tmp_path: Path, extra: str, key: str, words: str) -> None:
    error = fails(tmp_path, ONPREMISE + extra)
    assert_where(error, tmp_path, job="wine", key=key, line=7)
    assert words in str(error)


def test_onpremise_needs_an_id(tmp_path: Path) -> None:
    error = fails(tmp_path, ONPREMISE.replace("    products: [1001]\n", "    beers: []\n"))
    assert_where(error, tmp_path, job="wine", key="products", line=3)
    assert "at least one" in str(error)


def onpremise(tmp_path: Path, extra: str) -> OnpremiseJob:
    job = load(tmp_path, with_keys(ONPREMISE, extra)).jobs[0]
    assert isinstance(job, OnpremiseJob)
    return job


def test_products_all_is_a_whole_account_without_ids(tmp_path: Path) -> None:
    job = onpremise(tmp_path, "    products: all\n")
    assert job.whole == {"products"} and job.owners() == () and job.products == ()
    assert job.page_size == 100


def test_beers_and_menu_items_all_beside_explicit_ids(tmp_path: Path) -> None:
    job = onpremise(tmp_path, "    beers: all\n    menu_items: 'all'\n    restaurants: [3001]\n"
                    "    page_size: 1000\n")
    assert job.whole == {"beers", "menu_items"} and job.page_size == 1000
    assert job.owners() == (("products", "1001"), ("restaurants", "3001"))


def test_all_from_the_environment(tmp_path: Path) -> None:
    text = with_keys(ONPREMISE, "    products: ${WHICH}\n")
    job = load(tmp_path, text, {"WHICH": "all"}).jobs[0]
    assert isinstance(job, OnpremiseJob) and job.whole == {"products"}


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ("    restaurants: all\n", "restaurants", "no list of them"),
        ("    products: ALL\n", "products", "write it in lower case: all"),
        ("    products: every\n", "products", "a list of ids such as [1001, 1002], or the word "
         "all, got 'every'"),
        ("    beers: 5\n", "beers", "a list of ids such as [1001, 1002], or the word all"),
        ("    beers: [all]\n", "beers", "an id made of digits, got 'all'"),
        ("    page_size: 0\n", "page_size", "from 1 to 1000"),
        ("    page_size: 1001\n", "page_size", "from 1 to 1000"),
        ("    page_size: many\n", "page_size", "a whole number from 1 to 1000"),
    ],
)
def test_whole_account_errors(tmp_path: Path, extra: str, key: str, words: str) -> None:
    text = with_keys(ONPREMISE, extra)
    error = fails(tmp_path, text)
    assert_where(error, tmp_path, job="wine", key=key, line=text.count("\n"))
    assert words in str(error)
    assert str(error).count("\n") == 0


def test_restaurants_all_is_refused_even_beside_products_all(tmp_path: Path) -> None:
    error = fails(tmp_path, with_keys(ONPREMISE, "    products: all\n    restaurants: all\n"))
    assert_where(error, tmp_path, job="wine", key="restaurants", line=7)
    assert "restaurants: [3001]" in str(error)


def test_a_job_with_no_ids_and_no_all_names_both_ways(tmp_path: Path) -> None:
    error = fails(tmp_path, ONPREMISE.replace("    products: [1001]\n", "    products: []\n"))
    assert_where(error, tmp_path, job="wine", key="products", line=3)
    assert "products: all" in str(error)


def test_the_whole_account_error_exits_2_without_a_traceback(tmp_path: Path) -> None:
    from ..conftest import run_cli

    path = write(tmp_path, ONPREMISE + "    restaurants: all\n")
    result = run_cli("run", path)
    assert result.code == 2 and "Traceback" not in result.err
    assert "key 'restaurants'" in result.err and "line 7" in result.err
    assert not (tmp_path / "archive").exists()


def test_token_on_onpremise_job_says_where_it_belongs(tmp_path: Path) -> None:
    error = fails(tmp_path, ONPREMISE + f"    token: {SECRET}\n")
    assert_where(error, tmp_path, job="wine", key="token", line=7)
    assert "spectrum" in str(error) and "'api_key'" in str(error)
    assert SECRET not in str(error)


@pytest.mark.parametrize(
    ("remove", "key", "line"),
    [("    token: tok\n", "token", 3), ("    client: carhartt\n", "client", 3),
     ('    organizations: ["7000000000000300322"]\n', "organizations", 3),
     ("    source: spectrum\n", "source", 3)],
)
def test_missing_required_keys(tmp_path: Path, remove: str, key: str, line: int) -> None:
    error = fails(tmp_path, SPECTRUM.replace(remove, ""))
    assert_where(error, tmp_path, job="carhartt", key=key, line=line)
    assert "missing required key" in str(error)


def test_missing_name_uses_the_job_index(tmp_path: Path) -> None:
    text = SPECTRUM + "  - source: urls\n    urls_file: x\n"
    error = fails(tmp_path, text)
    assert_where(error, tmp_path, job="jobs[1]", key="name", line=8)


def test_bad_name_and_source(tmp_path: Path) -> None:
    error = fails(tmp_path, SPECTRUM.replace("name: carhartt", "name: my job"))
    assert_where(error, tmp_path, job="jobs[0]", key="name", line=3)
    assert "'my job'" in str(error)
    error = fails(tmp_path, SPECTRUM.replace("source: spectrum", "source: spectrom"))
    assert_where(error, tmp_path, job="carhartt", key="source", line=4)
    assert "did you mean 'spectrum'?" in str(error)


def test_job_that_is_not_a_mapping(tmp_path: Path) -> None:
    error = fails(tmp_path, SPECTRUM + "  - just-a-name\n")
    assert_where(error, tmp_path, job="jobs[1]", key=None, line=8)


def test_duplicate_job_names_name_both_lines(tmp_path: Path) -> None:
    error = fails(tmp_path, SPECTRUM + SPECTRUM.split("jobs:\n", 1)[1])
    assert_where(error, tmp_path, job="carhartt", key="name", line=8)
    assert "duplicate job name" in str(error) and "lines 3 and 8" in str(error)


def test_duplicate_yaml_keys_in_a_job(tmp_path: Path) -> None:
    error = fails(tmp_path, SPECTRUM + "    client: other\n")
    assert_where(error, tmp_path, job="carhartt", key="client", line=8)
    assert "lines 6 and 8" in str(error)


def test_duplicate_yaml_keys_at_top_level_and_in_headers(tmp_path: Path) -> None:
    error = fails(tmp_path, SPECTRUM + "version: 1\n")
    assert_where(error, tmp_path, job=None, key="version", line=8)
    error = fails(tmp_path, SPECTRUM + "    headers:\n      X-A: 1\n      X-A: 2\n")
    assert_where(error, tmp_path, job="carhartt", key="X-A", line=10)
    error = fails(tmp_path, SPECTRUM + "    headers:\n      X-A: 1\n      x-a: 2\n")
    assert_where(error, tmp_path, job="carhartt", key="headers", line=10)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    error = fails(tmp_path, SPECTRUM + "    client: [unclosed\n    page_size: 3\n")
    assert error.line is not None and 8 <= error.line <= 10
    assert "not valid YAML" in str(error)
    error = fails(tmp_path, SPECTRUM.replace("    client: carhartt", "   client: carhartt"))
    assert error.line == 6 and error.job is None


def test_top_level_problems(tmp_path: Path) -> None:
    assert_where(fails(tmp_path, "- a\n- b\n"), tmp_path, job=None, key=None, line=1)
    assert "the manifest is empty" in str(fails(tmp_path, "# nothing\n"))
    error = fails(tmp_path, "version: 1\narchive: x\n")
    assert_where(error, tmp_path, job=None, key="jobs", line=1)
    assert_where(fails(tmp_path, "jobs: []\n"), tmp_path, job=None, key="jobs", line=1)
    error = fails(tmp_path, SPECTRUM + "job:\n  - {}\n")
    assert_where(error, tmp_path, job=None, key="job", line=8)
    assert "did you mean 'jobs'?" in str(error)
    error = fails(tmp_path, "concurrency: 3\n" + SPECTRUM)
    assert_where(error, tmp_path, job=None, key="concurrency", line=1)
    assert "'defaults:'" in str(error)


def test_defaults_problems(tmp_path: Path) -> None:
    body = SPECTRUM.split("\n", 1)[1]
    error = fails(tmp_path, "defaults:\n  per_hots: 3\n" + body)
    assert_where(error, tmp_path, job="defaults", key="per_hots", line=2)
    assert "did you mean 'per_host'?" in str(error)
    error = fails(tmp_path, f"defaults:\n  token: {SECRET}\n" + body)
    assert_where(error, tmp_path, job="defaults", key="token", line=2)
    assert "inside each job" in str(error) and SECRET not in str(error)
    error = fails(tmp_path, "defaults: [1]\n" + body)
    assert_where(error, tmp_path, job=None, key="defaults", line=1)
    error = fails(tmp_path, "defaults:\n  per_host: false\n" + body)
    assert_where(error, tmp_path, job="defaults", key="per_host", line=2)


def test_version(tmp_path: Path) -> None:
    assert load(tmp_path, SPECTRUM.replace("version: 1\n", "")).jobs
    error = fails(tmp_path, SPECTRUM.replace("version: 1", "version: 2"))
    assert_where(error, tmp_path, job=None, key="version", line=1)
    assert "version 1" in str(error)


def test_archive_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "store").write_text("")
    error = fails(tmp_path, SPECTRUM + "archive: store\n")
    assert_where(error, tmp_path, job=None, key="archive", line=8)
    assert str(tmp_path / "store") in str(error)
    error = fails(tmp_path, SPECTRUM + "archive: store/inside\n")
    assert_where(error, tmp_path, job=None, key="archive", line=8)
    (tmp_path / "archive").write_text("")
    assert_where(fails(tmp_path, SPECTRUM), tmp_path, job=None, key="archive", line=None)


def test_archive_path_is_resolved_not_created(tmp_path: Path) -> None:
    manifest = load(tmp_path, SPECTRUM + "archive: ~/../x/./y\n", {})
    assert manifest.archive == (Path.home().parent / "x" / "y").resolve()
    assert manifest.archive.is_absolute()


def test_urls_file_problems(tmp_path: Path) -> None:
    text = "jobs:\n  - name: u\n    source: urls\n    urls_file: missing.csv\n"
    error = fails(tmp_path, text)
    assert_where(error, tmp_path, job="u", key="urls_file", line=4)
    assert "no such file" in str(error) and str(tmp_path / "missing.csv") in str(error)
    (tmp_path / "missing.csv").mkdir()
    assert "not a regular file" in str(fails(tmp_path, text))
    error = fails(tmp_path, "jobs:\n  - name: u\n    source: urls\n")
    assert_where(error, tmp_path, job="u", key="urls_file", line=2)


def test_unusable_manifest_files(tmp_path: Path) -> None:
    for path, words in [(tmp_path / "nope.yaml", "no such file"), (tmp_path, "is a folder")]:
        with pytest.raises(ManifestError) as info:
            load_manifest(path, {})
        assert info.value.file == str(path) and words in str(info.value)
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"version: 1\njobs:\n  - name: caf\xe9\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(bad, {})
    assert info.value.line == 3 and "UTF-8" in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable_manifest(tmp_path: Path) -> None:
    path = write(tmp_path, SPECTRUM)
    path.chmod(0)
    with pytest.raises(ManifestError) as info:
        load_manifest(path, {})
    assert "permission denied" in str(info.value)


# --- secrets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        f"    token: [{SECRET}]\n",
        f"    token: {{a: {SECRET}}}\n",
        f"    token: ${{X:-{SECRET}}} ${{Y}}\n",
        f"    headers: {{Authorization: [{SECRET}]}}\n",
        f"    headers: {{Authorization: 'Bearer {SECRET}\n\n  x'}}\n",
        f"    headers: {{Authorization Bearer {SECRET}: x}}\n",
        f"    headers: {SECRET}\n",
        f"    token: {SECRET}: oops\n",
        f"    token: '{SECRET}\n",
        f"    api_key: {SECRET}\n",
        f"    tokken: {SECRET}\n",
        f"    client: [{{x: 1}}]\n    token: {SECRET}\n",
    ],
)
def test_secrets_never_appear_in_errors(tmp_path: Path, extra: str) -> None:
    text = with_keys(SPECTRUM, extra)
    error = fails(tmp_path, text, {"SECRET_VAR": SECRET})
    assert SECRET not in str(error) and SECRET not in repr(error.args)


def test_secret_from_the_environment_is_not_shown(tmp_path: Path) -> None:
    error = fails(tmp_path, SPECTRUM + "    headers: {X-Key: '${K}\n\n x'}\n", {"K": SECRET})
    assert SECRET not in str(error)
    error = fails(tmp_path, SPECTRUM.replace("token: tok", "token: ${K}x ${MISSING}"),
                  {"K": SECRET})
    assert SECRET not in str(error) and "MISSING" in str(error)


# --- parse_size ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0), (0, 0), (1234, 1234), (2.5, 3), ("50MB", 50_000_000), ("1.5MiB", 1_572_864),
        ("10GiB", 10 * 2**30), ("2k", 2000), ("2K", 2000), ("2kB", 2000), ("2KiB", 2048),
        (" 7 B ", 7), ("1.1MB", 1_100_000), ("1e6", 1_000_000), ("0.0001KB", 1), ("3T", 3 * 10**12),
        ("1PiB", 2**50), (".5k", 500),
    ],
)
def test_parse_size(text: str | int | float, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "junk",
    ["", "MB", "fast", "5Mb", "5 bits", "-1", -1, "1.2.3", "5i", "5iB", "1e999999999", True,
     float("inf"), float("nan"), "5 MB/s", "１０"],
)
def test_parse_size_refuses_junk(junk: str | int | float) -> None:
    with pytest.raises(ValueError):
        parse_size(junk)


UNITS = {"": 1, "B": 1, "k": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "GB": 10**9,
         "KiB": 2**10, "MiB": 2**20, "Gi": 2**30, "TiB": 2**40}


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(sorted(UNITS)))
def test_parse_size_round_trip(n: int, unit: str) -> None:
    assert parse_size(f"{n}{unit}") == n * UNITS[unit]
    assert parse_size(n * UNITS[unit]) == n * UNITS[unit]


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=999))
def test_parse_size_fractions_round_up(whole: int, thousandths: int) -> None:
    value = parse_size(f"{whole}.{thousandths:03d}KiB")
    exact = (whole * 1000 + thousandths) * 1024
    assert value == -(-exact // 1000)


# --- YAML corners -------------------------------------------------------------------------


def test_anchors_and_aliases_are_followed(tmp_path: Path) -> None:
    text = SPECTRUM.replace('["7000000000000300322"]', '&orgs ["7000000000000300322"]')
    text += "  - name: second\n    source: spectrum\n    token: t\n    client: c\n"
    text += "    organizations: *orgs\n"
    assert [j.organizations for j in load(tmp_path, text).jobs if isinstance(j, SpectrumJob)] == [
        ("7000000000000300322",), ("7000000000000300322",)]


def test_recursive_alias_is_an_error_not_a_hang(tmp_path: Path) -> None:
    error = fails(tmp_path, SPECTRUM + "    formats: &x [png, *x]\n")
    assert error.line == 8 and "refers to itself" in str(error)


def test_aliases_do_not_blow_up(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    error = fails(tmp_path, SPECTRUM + "\n".join(lines) + "\n")
    assert error.key == "a0"  # reported as an unknown key at once, not expanded 10^9 times


def test_credential_on_one_line(tmp_path: Path) -> None:
    error = fails(tmp_path, SPECTRUM.replace("token: tok", f'token: "{SECRET}\\tx"'))
    assert_where(error, tmp_path, job="carhartt", key="token", line=5)
    assert SECRET not in str(error)


def test_job_name_from_the_environment(tmp_path: Path) -> None:
    text = SPECTRUM.replace("name: carhartt", "name: ${JOB:-nightly}")
    assert load(tmp_path, text).jobs[0].name == "nightly"
    error = fails(tmp_path, SPECTRUM.replace("name: carhartt", "name: ${JOB}"))
    assert_where(error, tmp_path, job="jobs[0]", key="name", line=3)


def test_a_variable_shared_with_a_secret_is_never_echoed(tmp_path: Path) -> None:
    secret = "SECRETKEY-4242"
    for key_line in ("    concurrency: ${S}\n", "    since: ${S}\n", "    formats: [${S}]\n"):
        path = tmp_path / "m.yaml"
        source = "onpremise" if "formats" not in key_line else "spectrum"
        creds = ("    api_key: ${S}\n    products: [1]\n" if source == "onpremise" else
                 "    token: ${S}\n    client: c\n    organizations: [1]\n")
        path.write_text(f"version: 1\njobs:\n  - name: a\n    source: {source}\n{creds}{key_line}")
        with pytest.raises(ManifestError) as caught:
            load_manifest(path, {"S": secret})
        assert secret not in str(caught.value)


# -- object-store archives (SPEC 7) -----------------------------------------------------------


def test_an_s3_archive_and_its_options(tmp_path: Path) -> None:
    from assetvault.storage.location import StoreUrl

    text = SPECTRUM.replace("version: 1\n", "version: 1\narchive: s3://brand-backups/nightly/\n"
                            "archive_options:\n  endpoint: ${S3_ENDPOINT}\n  region: eu-west-1\n"
                            "  allow_http: yes\n")
    manifest = load(tmp_path, text, {"S3_ENDPOINT": "http://127.0.0.1:8333"})
    assert manifest.archive == StoreUrl("s3", "brand-backups", "nightly", (
        ("endpoint", "http://127.0.0.1:8333"), ("region", "eu-west-1"), ("allow_http", "true")))
    assert str(manifest.archive) == "s3://brand-backups/nightly"


@pytest.mark.parametrize(("archive", "extra", "said"), [
    ("s3:///nightly", "", "names no bucket"),
    ("s3://b/p", "archive_options:\n  endpiont: http://x\n", "did you mean 'endpoint'"),
    ("./here", "archive_options:\n  region: eu-west-1\n", "apply to an object-store archive"),
])
def test_bad_object_store_settings_say_what_and_where(tmp_path: Path, archive: str, extra: str,
                                                      said: str) -> None:
    text = SPECTRUM.replace("version: 1\n", f"version: 1\narchive: {archive}\n{extra}")
    error = fails(tmp_path, text)
    assert said in error.message and "line" in error.message


@pytest.mark.parametrize(("second", "shared"), [
    ("    base_url: https://staging.example\n    products: [1001, 1002]\n",
     "data/onpremise/products/1001/"),
    ("    base_url: https://staging.example\n    products: all\n", "data/onpremise/products/"),
    ("    base_url: https://staging.example\n    beers: [7]\n    products: [2]\n", None),
    ("    base_url: https://dashboard.onpremisewine.com/\n    products: [1001]\n", None),
])
def test_two_jobs_filling_one_folder_from_different_hosts_are_refused(
        tmp_path: Path, second: str, shared: str | None) -> None:
    # The layout has no place for the host: a staging job's files would overwrite the
    # production job's (and back again on the next run), SPEC 3's "never overwrite".
    text = ONPREMISE + "  - name: wine-staging\n    source: onpremise\n    api_key: k2\n" + second
    if shared is None:
        assert len(load(tmp_path, text).jobs) == 2
        return
    error = fails(tmp_path, text)
    assert_where(error, tmp_path, job="wine-staging", key="base_url", line=10)
    assert shared in str(error) and "'wine'" in str(error) and "staging.example" in str(error)
    assert "k2" not in str(error)


def test_two_spectrum_jobs_of_one_organization_on_different_hosts_are_refused(
        tmp_path: Path) -> None:
    text = SPECTRUM + ("  - name: carhartt-staging\n    source: spectrum\n    token: t2\n"
                       "    client: carhartt\n    base_url: https://staging.example\n"
                       "    organizations: [\"7000000000000300322\", \"1\"]\n")
    error = fails(tmp_path, text)
    assert "data/spectrum/carhartt/7000000000000300322/" in str(error)
    other = text.replace('"7000000000000300322", "1"', '"1"')
    assert len(load(tmp_path, other).jobs) == 2
