"""Secrets stay secret, credentials stay on their origin, writes stay inside data/."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from assetvault.sandbox import DatasetConfig, SandboxThread

from .conftest import onpremise_job, run_cli, spectrum_job, write_manifest


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_credentials_never_follow_a_redirect_to_another_origin(tmp_path: Path) -> None:
    with SandboxThread(DatasetConfig(hostile=True)) as box:
        jobs = [spectrum_job(box, headers={"X-Extra": "hdr-secret-value"}, retries=0),
                onpremise_job(box, retries=0, products=box.dataset.owner_ids("products")[:1])]
        manifest = write_manifest(tmp_path, jobs)
        run_cli("run", manifest, "--no-progress")
        files_port = port_of(box.files_url)
        on_files = [r for r in box.requests if r.port == files_port]
        redirected = [r for r in box.requests if r.path == "/redirect"]
    assert on_files and redirected
    for r in on_files:
        assert "SPECTRUM_API_TOKEN" not in r.headers and "X-Extra" not in r.headers
        assert "api_key" not in r.query
    # the API origin itself did get them
    assert any("SPECTRUM_API_TOKEN" in r.headers for r in box.requests if r.port != files_port)


def test_a_planted_symlink_cannot_redirect_writes_outside_data(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = tmp_path / "archive"
    (archive / "data/onpremise").mkdir(parents=True)
    (archive / "data/onpremise/products").symlink_to(outside, target_is_directory=True)
    with SandboxThread(DatasetConfig()) as box:
        manifest = write_manifest(tmp_path, [onpremise_job(box)])
        result = run_cli("run", manifest, "--no-progress")
    assert result.code == 1
    assert "resolves outside data/" in result.err
    assert not any(outside.rglob("*"))


def test_allow_hosts_refuses_other_hosts_and_requests_nothing_there(tmp_path: Path) -> None:
    with SandboxThread(DatasetConfig()) as box:
        manifest = write_manifest(tmp_path, [onpremise_job(box, allow_hosts=["cdn.example.com"])])
        result = run_cli("run", manifest, "--no-progress")
        files = [r for r in box.requests if r.port == port_of(box.files_url)]
    assert result.code == 1
    assert "allow_hosts" in result.err
    assert not files


def test_a_refused_onpremise_key_fails_that_job_with_exit_2(tmp_path: Path) -> None:
    with SandboxThread(DatasetConfig()) as box:
        manifest = write_manifest(tmp_path, [onpremise_job(box, api_key="wrong-key-123"),
                                             spectrum_job(box)])
        result = run_cli("run", manifest, "--no-progress")
    assert result.code == 2
    assert "api_key" in result.err and "wrong-key-123" not in result.err + result.out
    assert "spec " in result.out  # the other job ran and is in the summary


@pytest.fixture
def self_signed(tmp_path: Path) -> Iterator[str]:
    """An https server with a self-signed certificate; yields a file URL on it."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, object] = {}

    async def serve() -> None:
        app = web.Application()

        async def handler(_: web.Request) -> web.Response:
            return web.Response(body=b"x" * 100)

        app.router.add_get("/f.bin", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        state["port"] = runner.addresses[0][1]
        state["runner"] = runner
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()),
                                              loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield f"https://127.0.0.1:{state['port']}/f.bin"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_tls_verification_is_always_on(tmp_path: Path, self_signed: str) -> None:
    (tmp_path / "list.txt").write_text(self_signed + "\n")
    manifest = write_manifest(tmp_path, [{"name": "tls", "source": "urls",
                                          "urls_file": "list.txt", "retries": 0}])
    result = run_cli("run", manifest, "--no-progress")
    assert result.code == 1
    assert "certificate" in result.err.lower() or "ssl" in result.err.lower()
    assert not list((tmp_path / "archive/data").rglob("f.bin"))
