"""The only place that finds and launches Chromium, and keeps each account's saved session.

Chromium is looked for in this order: a configured path, a Playwright-managed browser (`playwright install
chromium`), `chromium` on PATH. A headless run prefers Chromium's headless shell on PATH (Debian's
`chromium-headless-shell`), as Playwright does with its own: without a window's UI it used a sixth less CPU
than the full browser on a rerun of 2,000 invoices, 0.45 s of 2.8. Saved sessions are Playwright storage
states, one file per account, mode 0600, holding only what belongs to the portal's own hosts: cookies the
portal and login hosts receive, and their origins' storage; whatever another host set (a redirect, an embedded
page) is dropped before anything is written.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

from playwright.async_api import Browser, BrowserContext, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from agent.errors import FapiaoError, PortalUnavailable, SettingsError

log = logging.getLogger(__name__)

PATH_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
HEADLESS_SHELL = "chromium-headless-shell"
DEBIAN_PACKAGES = "chromium chromium-headless-shell fonts-noto-cjk"  # the fonts make Chinese pages readable
NET_ERROR = re.compile(r"net::ERR_[A-Z0-9_]+")
TLS_ERROR_MARKS = ("ERR_CERT_", "ERR_SSL_", "SSL_ERROR")  # Chromium's net errors for a certificate it refuses
# Without these Chromium keeps calling Google's services, which a closed network refuses noisily.
QUIET_ARGS = ("--disable-background-networking", "--disable-component-update", "--disable-sync")
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class ChromiumChoice:
    path: Path | None  # None: let Playwright use the browser it manages
    source: str  # "configured", "playwright", "PATH"

    def describe(self) -> str:
        return f"{self.source}: {self.path or 'Playwright-managed Chromium'}"


def _playwright_managed_chromium() -> Path | None:
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            path = Path(playwright.chromium.executable_path)
    except Exception:  # a broken driver is "not found", not a crash  # noqa: BLE001
        return None
    return path if path.exists() else None


def find_chromium(configured: Path | None = None, headless: bool = True) -> ChromiumChoice:
    if configured is not None:
        if not configured.exists():
            raise SettingsError(f"browser_path {configured} does not exist; fix FAPIAO_BROWSER_PATH or --browser-path")
        return ChromiumChoice(configured, "configured")
    managed = _playwright_managed_chromium()
    if managed is not None:
        return ChromiumChoice(None, "playwright")
    for name in ((HEADLESS_SHELL,) if headless else ()) + PATH_CANDIDATES:
        found = shutil.which(name)
        if found:
            return ChromiumChoice(Path(found), "PATH")
    raise SettingsError(
        f"no Chromium found: run `playwright install chromium` (or, on Debian, `apt-get install {DEBIAN_PACKAGES}`), "
        "or point FAPIAO_BROWSER_PATH at a Chromium executable"
    )


def install_chromium() -> ChromiumChoice:
    """Set-up's fallback chain when nothing is found: Playwright's download, then Debian's package."""
    attempts = [[sys.executable, "-m", "playwright", "install", "chromium"]]
    if os.geteuid() == 0 and shutil.which("apt-get"):
        attempts.append(["sh", "-c", f"apt-get update -qq && apt-get install -y -qq {DEBIAN_PACKAGES}"])
    for command in attempts:
        log.info("installing Chromium: %s", " ".join(command))
        if subprocess.run(command, check=False).returncode == 0:
            try:
                return find_chromium()
            except SettingsError:
                continue
    return find_chromium()


def launch_args() -> list[str]:
    args = list(QUIET_ARGS)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to start as root with its sandbox on
    return args


def navigation_error(exc: PlaywrightError, url: str) -> FapiaoError:
    """A page load that failed, in our terms: an untrusted certificate stops the run (never retried, never
    ignored unless `insecure` is set); anything else (refused, reset, timed out) is the portal being unavailable."""
    first_line = exc.message.splitlines()[0] if exc.message else type(exc).__name__
    found = NET_ERROR.search(first_line)  # "Page.goto: net::ERR_CONNECTION_REFUSED at <url>" -> the code
    reason = found.group(0) if found else first_line
    if any(mark in reason for mark in TLS_ERROR_MARKS):
        return SettingsError(
            f"the portal's TLS certificate is not valid ({reason}); the connection may be intercepted: check "
            "portal_url and the system's CA certificates, or set insecure = true only for a portal you trust"
        )
    return PortalUnavailable(f"cannot reach the portal at {url}: {reason}")


def origin_of(url: str) -> str:
    """scheme://host:port of a URL, the port always written: what "the same site" means for a credential."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number: no origin of ours
        port = None
    return f"{scheme}://{parts.hostname or ''}:{port}"


def _cookie_reaches(domain: str, hosts: set[str]) -> bool:
    """Whether a browser sends a cookie of `domain` to one of `hosts` (a host-only cookie, or a parent domain's)."""
    domain = domain.lstrip(".").lower()
    return any(host == domain or host.endswith("." + domain) for host in hosts)


def own_storage(state: dict[str, Any], own_urls: Iterable[str]) -> dict[str, Any]:
    """A storage state cut down to what `own_urls`' hosts receive: their cookies and their origins' storage."""
    urls = list(own_urls)
    hosts = {(urlsplit(url).hostname or "").lower() for url in urls}
    origins = {origin_of(url) for url in urls}
    return {
        **state,
        "cookies": [c for c in state.get("cookies", []) if _cookie_reaches(str(c.get("domain", "")), hosts)],
        "origins": [o for o in state.get("origins", []) if origin_of(str(o.get("origin", ""))) in origins],
    }


def file_stem(account_name: str) -> str:
    """An account name as a safe file name."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in account_name)


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read, atomically (sessions hold login cookies)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.part-{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(temp, 0o600)
    os.replace(temp, path)


class BrowserSession:
    """A running Chromium; hands out one context per account with its saved session loaded."""

    def __init__(self, chromium: ChromiumChoice, state_dir: Path, headless: bool = True, insecure: bool = False):
        self.chromium = chromium
        self.state_dir = state_dir
        self.headless = headless
        self.insecure = insecure
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None

    async def __aenter__(self) -> Self:
        self._playwright = await async_playwright().start()
        log.info("launching Chromium (%s)", self.chromium.describe())
        self._browser = await self._playwright.chromium.launch(
            executable_path=str(self.chromium.path) if self.chromium.path else None,
            headless=self.headless,
            args=launch_args(),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._browser is not None:
            await self._browser.close()
        if self._playwright is not None:
            await self._playwright.stop()

    def state_path(self, account_name: str) -> Path:
        return self.state_dir / "sessions" / f"{file_stem(account_name)}.json"

    async def new_context(self, account_name: str) -> BrowserContext:
        assert self._browser is not None, "use BrowserSession as an async context manager"
        state = self.state_path(account_name)
        context = await self._browser.new_context(
            storage_state=state if state.exists() else None,
            ignore_https_errors=self.insecure,
            accept_downloads=True,
            locale="zh-CN",
        )
        return context

    async def save_session(self, context: BrowserContext, account_name: str, own_urls: Iterable[str]) -> None:
        """Save the context's session, keeping only what the hosts of `own_urls` (portal, login) receive."""
        state = own_storage(dict(await context.storage_state()), own_urls)
        write_private(self.state_path(account_name), json.dumps(state).encode())

    def forget_session(self, account_name: str) -> None:
        self.state_path(account_name).unlink(missing_ok=True)
