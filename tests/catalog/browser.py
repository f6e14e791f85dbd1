"""Headless Chromium for the catalog tests: a DOM after scripts ran, and screenshots.

Each call is one ``chromium --headless`` process with its own profile folder, bounded by a
timeout; ``--virtual-time-budget`` lets the page's scripts (the search's shards) run to rest
before the DOM is dumped, instead of any sleep.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT = 60
# Chromium's own services (time, updates, accounts), which it calls whatever the page is.
OWN_HOSTS = re.compile(r"https?://[^/]*(google\.com|googleapis\.com|gvt1\.com)(:\d+)?/")


def require_chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("ASSETVAULT_REQUIRE_CHROMIUM"):
            pytest.fail("ASSETVAULT_REQUIRE_CHROMIUM is set but no chromium is installed")
        pytest.skip("headless Chromium is not installed (apt-get install chromium); set "
                    "ASSETVAULT_REQUIRE_CHROMIUM=1 to make this a failure")
    return CHROMIUM


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    binary = require_chromium()
    with tempfile.TemporaryDirectory(prefix="catalog-chromium-") as profile:
        return subprocess.run(
            [binary, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}",
             *args], capture_output=True, text=True, timeout=TIMEOUT, check=True,
            stdin=subprocess.DEVNULL)


def dump_dom(url: str, budget_ms: int = 5000, netlog: Path | None = None) -> str:
    """The DOM once scripts ran; with ``netlog``, every network request is logged there."""
    log = [f"--log-net-log={netlog}"] if netlog else []
    return _chromium(f"--virtual-time-budget={budget_ms}", *log, "--dump-dom", url).stdout


def requests_in(netlog: Path) -> set[str]:
    """The http(s) URLs a page asked for, from Chromium's net log (its own services left out)."""
    urls = {str(e.get("params", {}).get("url", "")) for e in json.loads(
        netlog.read_text("utf-8", "replace")).get("events", [])}
    return {u for u in urls if re.match(r"(https?|wss?|ftp)://", u) and not OWN_HOSTS.match(u)}


def screenshot(url: str, out: Path, size: tuple[int, int] = (1280, 1400)) -> Path:
    _chromium("--virtual-time-budget=1000", f"--window-size={size[0]},{size[1]}",
              f"--screenshot={out}", url)
    return out


def file_url(path: Path, fragment: str = "") -> str:
    return path.resolve().as_uri() + (f"#{fragment}" if fragment else "")
