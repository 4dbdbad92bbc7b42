"""Fixtures of the reliability suite: fast agent settings, and the fault x outcome matrix written at the end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from agentkit import SettingsFactory
from reliakit import FAST, Matrix

from agent.config import Account, Settings


@pytest.fixture
def fast_settings(agent_settings: SettingsFactory) -> SettingsFactory:
    """agent_settings with short waits and one verification process (see reliakit.FAST)."""

    def make(account: Account | None = None, **overrides: Any) -> Settings:
        return agent_settings(account, **{**FAST, **overrides})

    return make


@pytest.fixture(scope="session")
def fault_matrix() -> Iterator[Matrix]:
    """Collects one row per fault-matrix case; docs/reliability.md is rewritten only from a complete, green matrix."""
    matrix = Matrix()
    yield matrix
    if matrix.complete():
        matrix.write()
