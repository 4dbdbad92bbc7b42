"""Running the status page: `StatusServer` (uvicorn on a daemon thread: tests, screenshots) and `serve()`, the
foreground runner behind `fapiao serve`, which prints the page's URL with its access token as its first line.

Bound to a loopback address, a token is made up at each start unless `web_token` is configured; bound to any
other address, `web_token` must be configured (the page would otherwise be open to whoever guesses the port).
Uvicorn's access log is off: it would write the token of the first request; agent/web/access.py logs paths only.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import threading
import time
from types import FrameType
from typing import Self

import uvicorn

from agent.config import Settings
from agent.errors import SettingsError
from agent.ledger import Ledger
from agent.web.access import TOKEN_PARAM, Access, new_token
from agent.web.app import build_app
from agent.web.status import Sources, StatusQueue

log = logging.getLogger(__name__)

DEFAULT_PORT = 8700
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def access_token(settings: Settings, host: str) -> str:
    """The configured web_token, or (on loopback only) a new one; SettingsError when one is needed."""
    configured = getattr(settings, "web_token", None)
    if configured is not None and configured.get_secret_value():
        return str(configured.get_secret_value())
    if not is_loopback(host):
        raise SettingsError(
            f"--host {host} lets other machines reach the status page: configure web_token first "
            "(FAPIAO_WEB_TOKEN or web_token in the config file, at least 16 characters), or listen on 127.0.0.1"
        )
    return new_token()


def open_queue(settings: Settings) -> StatusQueue | None:
    """The archive's queue (embedded, or Redis when queue_url says so)."""
    try:
        from agent.queue import FirmQueue
    except ImportError as exc:  # the queue's own dependencies missing: the page still shows the ledger
        log.warning("no queue to show: %s", exc)
        return None
    return FirmQueue(settings)


def open_sources(settings: Settings) -> Sources:
    ledger = Ledger.open(settings.out, settings.database_url)
    try:
        return Sources(ledger=ledger, queue=open_queue(settings), settings=settings)
    except BaseException:
        ledger.close()
        raise


def close_sources(sources: Sources) -> None:
    close = getattr(sources.queue, "close", None)
    if callable(close):
        close()
    sources.ledger.close()


class StatusServer:
    """The status page on a thread: `url` is its base, `login_url` the same with the token."""

    def __init__(self, sources: Sources, token: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sources, self.token, self.host, self.port = sources, token, host, port
        self.app = build_app(sources, Access(token))
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "::") else socket.gethostname()
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def login_url(self) -> str:
        return f"{self.url}/?{TOKEN_PARAM}={self.token}"

    def start(self) -> Self:
        listener = self._listen()
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [listener]}, name=f"status-page:{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.stop()
                raise SettingsError(f"the status page did not start on {self.url}")
            time.sleep(0.01)
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
        listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host.strip("[]"), self.port))
        except OSError as exc:
            listener.close()
            raise SettingsError(f"cannot listen on {self.host}:{self.port} ({exc.strerror}); choose another --port") from None
        listener.listen(64)
        self.port = listener.getsockname()[1]
        return listener


def serve(settings: Settings, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
    """Serve in the foreground: the URL with the token first, then until SIGINT or SIGTERM."""
    token = access_token(settings, host)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    sources = open_sources(settings)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with StatusServer(sources, token, host, port) as server:
            print(server.login_url, flush=True)
            log.info("status page of %s at %s (stop with Ctrl-C)", settings.out, server.url)
            stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        close_sources(sources)
