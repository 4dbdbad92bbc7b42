from __future__ import annotations

from collections.abc import Iterator

import pytest
from notifykit import Mailbox, Webhook, smtp_server, webhook_receiver


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    yield from smtp_server()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    yield from webhook_receiver()
