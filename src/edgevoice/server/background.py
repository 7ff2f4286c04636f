"""A server in a background thread, for tests, notebooks and benchmarks that need a real socket (streaming and
client disconnects cannot be seen through an in-process test client)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn


class BackgroundServer:
    """uvicorn serving `app` from a thread on `host` (loopback) and a free port; stopped when the `with` ends."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, start_timeout: float = 30.0, **options):
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = host, self._socket.getsockname()[1]
        self.url = f"http://{host if ':' not in host else f'[{host}]'}:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2,
                                                     **options))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True,
                                        name=f"edgevoice-server-{self.port}")
        self._start_timeout = start_timeout

    def __enter__(self) -> "BackgroundServer":
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._socket.close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()
