"""The status page's fixtures over the seeded firm of webkit.py: its archive, a fake queue, the page on a thread
and a Chromium page signed in to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page
from webkit import TODAY, TOKEN, FakeQueue, Seeded, seed

from agent.ledger import Ledger
from agent.web.server import StatusServer
from agent.web.status import Sources


@pytest.fixture
def seeded(tmp_path: Path) -> Seeded:
    return seed(tmp_path / "archive")


@pytest.fixture
def fake_queue() -> FakeQueue:
    return FakeQueue()


@pytest.fixture
def server(seeded: Seeded, fake_queue: FakeQueue) -> Iterator[StatusServer]:
    with Ledger.open(seeded.root) as ledger:
        sources = Sources(ledger=ledger, queue=fake_queue, settings=seeded.settings, today=lambda: TODAY)
        with StatusServer(sources, TOKEN) as running:
            yield running


@pytest.fixture
def signed_in(page: Page, server: StatusServer) -> Page:
    """A Chromium page that opened the printed URL once: it holds the session cookie."""
    page.goto(server.login_url)
    return page
