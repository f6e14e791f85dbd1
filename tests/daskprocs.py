"""A real Dask cluster for tests: ``dask scheduler`` and ``dask worker`` processes on loopback,
started by the test and stopped after it (every wait bounded)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

START_WITHIN = 60.0
BIN = Path(sys.executable).parent


class DaskProcesses:
    """``with DaskProcesses(tmp, workers=2) as cluster:`` a scheduler at ``cluster.address``."""

    def __init__(self, folder: Path, workers: int = 2, *, env: dict[str, str] | None = None,
                 worker_env: dict[str, str] | None = None, tls: list[str] | None = None) -> None:
        self.folder = folder
        self.count = workers
        self.env = {**os.environ, **(env or {})}
        self.worker_env = worker_env or {}
        self.tls = tls or []  # the --tls-* options of every process
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.address = ""

    def __enter__(self) -> DaskProcesses:
        self.folder.mkdir(parents=True, exist_ok=True)
        file = self.folder / "scheduler.json"
        self.scheduler = self._spawn("scheduler", "--host", "127.0.0.1", "--port", "0",
                                     "--dashboard-address", "127.0.0.1:0",
                                     "--scheduler-file", str(file), *self.tls,
                                     *(["--protocol", "tls"] if self.tls else []))
        self.address = self._address(file)
        for _ in range(self.count):
            self.add_worker()
        if self.count:
            self.wait_for_workers(self.count)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        for proc in [*self.workers, self.scheduler]:
            if proc is not None:
                proc.wait(timeout=START_WITHIN)

    def add_worker(self, env: dict[str, str] | None = None,
                   scheduler: str | None = None) -> subprocess.Popen[bytes]:
        """A worker process (no nanny: a SIGKILL kills the worker itself, for good), which
        reaches the scheduler at ``scheduler`` if given (a relay in front of it)."""
        proc = self._spawn("worker", scheduler or self.address, "--nthreads", "4", "--no-nanny",
                           "--host", "127.0.0.1", "--no-dashboard",
                           "--local-directory", str(self.folder / f"w{len(self.workers)}"),
                           *self.tls, env={**self.worker_env, **(env or {})})
        self.workers.append(proc)
        return proc

    def kill_scheduler(self) -> None:
        assert self.scheduler is not None
        self.scheduler.send_signal(signal.SIGKILL)
        self.scheduler.wait(timeout=START_WITHIN)

    def wait_for_workers(self, count: int) -> None:
        from distributed import Client
        from distributed.security import Security

        security = None
        if self.tls:
            ca, cert, key = (self.tls[i + 1] for i in range(0, 6, 2))
            security = Security(tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key,
                                require_encryption=True)
        with Client(self.address, timeout=START_WITHIN, security=security) as client:
            client.wait_for_workers(count, timeout=START_WITHIN)

    def wait_until_idle(self) -> None:
        """Until no worker runs a task any more, even one its client cancelled (Dask lets a
        cancelled coroutine run on: the worker keeps it as "cancelled" until it ends)."""
        from distributed import Client

        def _running(dask_worker: object) -> int:  # nested: pickled by value for the worker
            tasks = dask_worker.state.tasks.values()  # type: ignore[attr-defined]
            return sum(1 for ts in tasks
                       if ts.state in ("executing", "long-running", "cancelled", "resumed"))

        with Client(self.address, timeout=START_WITHIN) as client:
            deadline = time.monotonic() + START_WITHIN
            while any(client.run(_running).values()):  # polled: tasks end as they will
                assert time.monotonic() < deadline, "a worker still runs tasks"
                time.sleep(0.05)

    def _spawn(self, role: str, *args: str,
               env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.folder / f"{role}-{len(self.workers)}.log", "ab")  # noqa: SIM115
        with log:
            return subprocess.Popen([str(BIN / "dask"), role, *args], stdout=log, stderr=log,
                                    stdin=subprocess.DEVNULL, env={**self.env, **(env or {})})

    def _address(self, file: Path) -> str:
        deadline = time.monotonic() + START_WITHIN
        while True:  # polled: the scheduler writes the file once it listens
            try:
                return str(json.loads(file.read_text())["address"])
            except (OSError, ValueError, KeyError):
                assert self.scheduler is not None and self.scheduler.poll() is None, \
                    "dask scheduler died: see " + str(self.folder)
                assert time.monotonic() < deadline, "dask scheduler did not start"
                time.sleep(0.05)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.folder.glob("*.log"))
