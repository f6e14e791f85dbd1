"""A TCP relay on 127.0.0.1 in threads: a Dask worker reaches its scheduler through it, and the
test can silence what the worker says (``hold``) while the worker goes on working. A closed
side closes the other, so the scheduler still learns of the worker's death."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

CHUNK = 65536


class Relay:
    """``with Relay("tcp://127.0.0.1:P") as relay:`` listens at ``relay.address``."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("tcp://").rsplit(":", 1)
        self._target = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"tcp://127.0.0.1:{self._listener.getsockname()[1]}"
        self._held = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def hold(self) -> None:
        """From now on what clients send is dropped: nothing more reaches the target."""
        self._held.set()

    def __enter__(self) -> Relay:
        threading.Thread(target=self._accept, name="relay", daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(self._target)
            except OSError:
                return  # the listener closed
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False),
                             daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, outbound: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(CHUNK):
                if not (outbound and self._held.is_set()):
                    sink.sendall(data)
        for sock in (source, sink):  # one side gone: both go (a reset is a close too)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
