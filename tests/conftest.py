"""Shared fixtures: pytest-playwright launches the Chromium the agent would find (configured, Playwright's, PATH)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from agentkit import SettingsFactory, mock_account

from agent.browser import find_chromium, launch_args
from agent.config import Account, Settings, load_settings
from fixtures.pytest_plugin import MockPortal


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    chromium = find_chromium()
    args = {**browser_type_launch_args, "args": launch_args(), "headless": True}
    if chromium.path is not None:
        args["executable_path"] = str(chromium.path)
    return args


@pytest.fixture
def agent_settings(mock_portal: MockPortal, tmp_path: Path) -> SettingsFactory:
    """Settings pointed at the mock: archive and saved sessions in tmp_path, no politeness delay (no pause,
    8 downloads in flight: the polite defaults would make every test wait)."""

    def make(account: Account | None = None, **overrides: Any) -> Settings:
        base = load_settings(
            None, portal_url=mock_portal.url, out=tmp_path / "archive", state_dir=tmp_path / "state",
            rate_limit=0.0, not_ready_wait=0.5, backoff_max=2.0, pause=0.0, pause_jitter=0.0, concurrency=8,
        )
        accounts = {"acct": account or mock_account(mock_portal)}
        return base.model_copy(update={"accounts": accounts, **overrides})

    return make
