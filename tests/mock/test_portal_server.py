"""Running the mock: the threaded server, its cache folder, and serve() as `fapiao mock-portal` uses it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from fixtures.portal.server import MockPortalServer, default_cache_dir

ROOT = Path(__file__).resolve().parents[2]


def test_serve_prints_the_url_first_then_stops_on_sigterm() -> None:
    code = "from fixtures.portal.server import serve; serve(port=0, scenario='captcha')"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env
    ) as process:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        page = httpx.get(url + "/", trust_env=False)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    assert url.startswith("http://127.0.0.1:")
    assert "captcha-img" in page.text


def test_server_serves_on_a_free_port_until_stopped() -> None:
    with MockPortalServer() as server:
        assert httpx.get(server.url + "/", trust_env=False).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/", trust_env=False)


def test_scenario_overrides_reach_the_portal() -> None:
    server = MockPortalServer("default", seed=3, lock_after=2)
    assert (server.portal.settings.lock_after, server.portal.seed) == (2, 3)


def test_cache_dir_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FAPIAO_MOCK_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("FAPIAO_MOCK_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "fapiao-mock"
