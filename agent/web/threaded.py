"""An ASGI app served by uvicorn on a daemon thread of this process: `ThreadedServer`, which the status page
(agent/web/server.py) and the mock portal (fixtures/portal/server.py) both are.

The listening socket is bound here, before uvicorn starts, so that port 0 becomes a free port that `port` tells
at once; start() returns only once uvicorn serves (or fails within START_TIMEOUT), stop() waits STOP_TIMEOUT at
most. Uvicorn's access log is off: a request line can carry a token.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Self

import uvicorn
from starlette.types import ASGIApp

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


class NotServing(RuntimeError):
    """Uvicorn did not start serving within START_TIMEOUT, or its thread ended first."""


def http_url(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


class ThreadedServer:
    """`app` on host:port (port 0: a free one, known once started); `name` says which server in errors."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0, name: str = "server") -> None:
        self.app, self.host, self.port, self.name = app, host, port, name
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return http_url(self.host, self.port)

    def start(self) -> Self:
        """Serve; OSError when host:port cannot be bound, NotServing when uvicorn does not come up."""
        listener = self._listen()
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [listener]}, name=f"{self.name}:{self.port}", daemon=True
        )
        self._thread.start()
        self._wait_until_serving()
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(STOP_TIMEOUT)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _listen(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # proto given explicitly: asyncio sets TCP_NODELAY only on IPPROTO_TCP sockets, and without it every
        # keep-alive answer waits ~40 ms for a delayed ACK
        listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host.strip("[]"), self.port))
        except OSError:
            listener.close()
            raise
        listener.listen(128)  # connections queue up even before uvicorn accepts
        self.port = listener.getsockname()[1]
        return listener

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not (self._server and self._server.started):
            if time.monotonic() > deadline or not (self._thread and self._thread.is_alive()):
                self.stop()
                raise NotServing(f"the {self.name} did not start on {self.url}")
            time.sleep(0.01)
