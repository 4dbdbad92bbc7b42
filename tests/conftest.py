"""Shared fixtures: pytest-playwright launches the Chromium the agent would find (configured, Playwright's, PATH)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.browser import find_chromium, launch_args


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    chromium = find_chromium()
    args = {**browser_type_launch_args, "args": launch_args(), "headless": True}
    if chromium.path is not None:
        args["executable_path"] = str(chromium.path)
    return args
