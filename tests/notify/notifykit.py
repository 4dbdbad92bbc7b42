"""A local SMTP server (aiosmtpd) and a local webhook receiver (a small HTTP server on a thread), started by the
tests, so that notifications are seen arriving the way a mailbox or a chat robot would receive them."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Mailbox:
    """What the SMTP server received: (subject, body) of each e-mail."""

    port: int
    mails: list[tuple[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=fapiao@example.com&to=accountant@example.com&mode=insecure"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        self.mails.append((str(message["Subject"]), body.get_content() if body is not None else ""))
        return "250 OK"


def smtp_server() -> Iterator[Mailbox]:
    mailbox = Mailbox(free_port())
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()


@dataclass
class Webhook:
    """What the webhook receiver was posted: apprise's JSON objects (title, message, type)."""

    port: int
    posts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"


def webhook_receiver() -> Iterator[Webhook]:
    hook = Webhook(0)

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            hook.posts.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    hook.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


def arrived(collection: list[Any], count: int, timeout: float = 15.0) -> list[Any]:
    """The first `count` items once they have arrived (notifications are sent on a thread)."""
    deadline = time.monotonic() + timeout
    while len(collection) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(collection) >= count, f"{len(collection)} of {count} notifications arrived: {collection}"
    return collection[:count]
