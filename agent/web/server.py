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
from types import FrameType
from typing import Self

from agent.config import Settings
from agent.errors import SettingsError
from agent.ledger import Ledger
from agent.web.access import TOKEN_PARAM, Access, new_token
from agent.web.app import build_app
from agent.web.status import Sources, StatusQueue
from agent.web.threaded import NotServing, ThreadedServer, http_url

log = logging.getLogger(__name__)

DEFAULT_PORT = 8700


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


class StatusServer(ThreadedServer):
    """The status page on a thread: `url` is its base, `login_url` the same with the token."""

    def __init__(self, sources: Sources, token: str, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(build_app(sources, Access(token)), host, port, name="status page")
        self.sources, self.token = sources, token

    @property
    def url(self) -> str:
        return http_url(self.host if self.host not in ("0.0.0.0", "::") else socket.gethostname(), self.port)

    @property
    def login_url(self) -> str:
        return f"{self.url}/?{TOKEN_PARAM}={self.token}"

    def start(self) -> Self:
        """Serve; SettingsError, said for the person who chose --host and --port, when it cannot."""
        try:
            return super().start()
        except OSError as exc:
            raise SettingsError(f"cannot listen on {self.host}:{self.port} ({exc.strerror}); choose another --port") from None
        except NotServing as exc:
            raise SettingsError(str(exc)) from None


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
