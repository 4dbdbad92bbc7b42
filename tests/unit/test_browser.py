"""Finding Chromium: configured path, Playwright's, then PATH (the headless shell first for a headless run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import browser
from agent.browser import find_chromium
from agent.errors import SettingsError


def executable(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH of one empty folder, and no Playwright-managed browser."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    monkeypatch.setattr(browser, "_playwright_managed_chromium", lambda: None)
    return folder


def test_a_headless_run_prefers_the_headless_shell_and_a_shown_one_the_full_browser(bin_dir: Path) -> None:
    full, shell = executable(bin_dir, "chromium"), executable(bin_dir, "chromium-headless-shell")
    assert find_chromium(headless=True).path == shell
    assert find_chromium(headless=False).path == full


def test_without_the_headless_shell_the_full_browser_runs_headless(bin_dir: Path) -> None:
    full = executable(bin_dir, "chromium")
    assert (find_chromium(headless=True).path, find_chromium(headless=True).source) == (full, "PATH")


def test_a_configured_path_comes_first_and_a_missing_one_names_the_setting(bin_dir: Path, tmp_path: Path) -> None:
    executable(bin_dir, "chromium-headless-shell")
    mine = executable(tmp_path, "my-chrome")
    assert find_chromium(mine).path == mine
    with pytest.raises(SettingsError, match="FAPIAO_BROWSER_PATH"):
        find_chromium(tmp_path / "absent")


def test_playwrights_browser_comes_before_path(bin_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    executable(bin_dir, "chromium-headless-shell")
    monkeypatch.setattr(browser, "_playwright_managed_chromium", lambda: executable(tmp_path, "chrome"))
    choice = find_chromium()
    assert (choice.path, choice.source) == (None, "playwright")  # Playwright launches its own, headless shell included


def test_no_browser_at_all_says_how_to_install_one(bin_dir: Path) -> None:
    with pytest.raises(SettingsError, match="playwright install chromium.*chromium-headless-shell"):
        find_chromium()
