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


# -- the saved session holds only what the portal's own hosts receive

PORTAL, SSO = "https://dppt.beijing.chinatax.gov.cn:8443", "https://tpass.beijing.chinatax.gov.cn:8443"


def cookie(domain: str, name: str = "c") -> dict[str, object]:
    return {"name": name, "value": "v", "domain": domain, "path": "/", "expires": -1, "httpOnly": True, "secure": True, "sameSite": "Lax"}


def test_a_saved_session_keeps_the_portals_cookies_and_storage_and_drops_every_other_hosts() -> None:
    state = {
        "cookies": [
            cookie("dppt.beijing.chinatax.gov.cn", "own"), cookie("tpass.beijing.chinatax.gov.cn", "sso"),
            cookie(".chinatax.gov.cn", "parent"),  # sent to the portal's hosts by the browser anyway
            cookie("127.0.0.2", "elsewhere"), cookie(".evil.example", "tracker"), cookie("xdppt.beijing.chinatax.gov.cn", "lookalike"),
        ],
        "origins": [
            {"origin": "https://dppt.beijing.chinatax.gov.cn:8443", "localStorage": [{"name": "k", "value": "v"}]},
            {"origin": "https://dppt.beijing.chinatax.gov.cn", "localStorage": []},  # another port: another origin
            {"origin": "http://127.0.0.2:8080", "localStorage": [{"name": "k", "value": "v"}]},
        ],
    }
    kept = browser.own_storage(state, [PORTAL, SSO])
    assert [c["name"] for c in kept["cookies"]] == ["own", "sso", "parent"]
    assert [o["origin"] for o in kept["origins"]] == ["https://dppt.beijing.chinatax.gov.cn:8443"]


def test_an_origin_is_scheme_host_and_port_with_the_default_port_written() -> None:
    assert browser.origin_of("https://Dppt.example.cn/invoice-query?x=1") == "https://dppt.example.cn:443"
    assert browser.origin_of("https://dppt.example.cn:443/") == browser.origin_of("https://dppt.example.cn")
    assert browser.origin_of("http://dppt.example.cn") != browser.origin_of("https://dppt.example.cn")
    assert browser.origin_of("http://127.0.0.1:8000/#/login") != browser.origin_of("http://127.0.0.1:8001/")
