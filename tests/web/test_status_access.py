"""Who may see the status page and what it serves: the token, its cookie, CSRF on every form, files by ledger id
from inside the archive only, the loopback rule, and the first line of `fapiao serve`."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from webkit import TOKEN, A, FakeQueue, Seeded

from agent.config import load_settings
from agent.errors import SettingsError
from agent.ledger import Ledger
from agent.web.access import COOKIE
from agent.web.server import StatusServer, access_token
from agent.web.status import Sources

PAGES = ["/", f"/company/{A}/2025-10", f"/company/{A}/2025-10/manifest.csv", f"/company/{A}/2025-10/manifest.xlsx",
         "/people", "/file/1", "/nowhere"]
FORMS = [f"/company/{A}/2025-10/run", "/people/wang/code", "/people/wang/restart"]


def client(server: StatusServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, trust_env=False, timeout=30)


@pytest.fixture
def session(server: StatusServer) -> Iterator[httpx.Client]:
    """A client that opened the printed URL: it holds the cookie."""
    with client(server) as signed:
        answer = signed.get(f"/?token={TOKEN}")
        assert answer.status_code == 303
        yield signed


def csrf_of(session: httpx.Client, path: str = "/people") -> str:
    page = session.get(path).text
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def file_ids(seeded: Seeded) -> dict[str, int]:
    with Ledger.open(seeded.root) as ledger:
        return {entry.number: entry.id for entry in ledger.entries() if entry.path}


# -- the token and its cookie


@pytest.mark.browser
def test_chromium_without_the_token_is_refused(page: Page, server: StatusServer) -> None:
    for path in ("/", "/people", f"/company/{A}/2025-10", "/file/1"):
        answer = page.goto(server.url + path)
        assert answer is not None and answer.status == 403
        expect(page.locator("body")).to_contain_text("needs its access token")
        expect(page.locator("body")).not_to_contain_text("北京甲科技有限公司")
    assert page.goto(f"{server.url}/?token=wrong-{TOKEN}").status == 403  # type: ignore[union-attr]
    page.goto(server.login_url)
    expect(page).to_have_url(server.url + "/")  # the token leaves the address bar at once
    [cookie] = page.context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == (COOKIE, True, "Strict")
    assert TOKEN not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script of the page can read it


def test_every_page_and_form_refuses_a_request_without_the_token(server: StatusServer, fake_queue: FakeQueue) -> None:
    with client(server) as anonymous:
        for path in PAGES:
            answer = anonymous.get(path)
            assert answer.status_code == 403, path
            assert "北京" not in answer.text and "2511" not in answer.text
        for path in FORMS:
            assert anonymous.post(path, data={"code": "123456", "csrf": "x"}).status_code == 403, path
        assert anonymous.get("/", headers={"Cookie": f"{COOKIE}=forged.0000"}).status_code == 403
        assert anonymous.get(f"/?token={TOKEN[:-1]}").status_code == 403
        assert anonymous.post(f"/?token={TOKEN}", data={"csrf": "x"}).status_code == 403  # the token buys GETs only
        assert anonymous.request("PUT", "/").status_code == 405
    assert fake_queue.codes == fake_queue.enqueued == fake_queue.restarted == []


def test_the_token_buys_a_cookie_and_a_redirect_without_it(server: StatusServer) -> None:
    with client(server) as fresh:
        answer = fresh.get(f"/people?token={TOKEN}")
        assert answer.status_code == 303 and answer.headers["location"] == "/people"
        set_cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie and "Path=/" in set_cookie
        page = fresh.get("/people")
        assert page.status_code == 200
        assert page.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_a_cookie_made_with_another_token_is_refused(seeded: Seeded, fake_queue: FakeQueue, server: StatusServer) -> None:
    with client(server) as first:
        first.get(f"/?token={TOKEN}")
        cookie = first.cookies[COOKIE]
    with Ledger.open(seeded.root) as ledger:
        from agent.web.status import Sources

        other = StatusServer(Sources(ledger=ledger, queue=fake_queue, settings=seeded.settings), "another-token-0123456789")
        with other, client(other) as stranger:
            assert stranger.get("/", headers={"Cookie": f"{COOKIE}={cookie}"}).status_code == 403


# -- CSRF


def test_a_post_without_the_csrf_token_is_refused(session: httpx.Client, server: StatusServer, fake_queue: FakeQueue) -> None:
    token = csrf_of(session)
    with client(server) as other:
        other.get(f"/?token={TOKEN}")
        someone_elses = csrf_of(other)
    assert someone_elses != token
    for path in FORMS:
        for fields in ({"code": "123456"}, {"code": "123456", "csrf": ""}, {"code": "123456", "csrf": "0" * 64},
                       {"code": "123456", "csrf": someone_elses}):
            answer = session.post(path, data=fields)
            assert answer.status_code == 403, (path, fields)
            assert "CSRF" in answer.text
        from_elsewhere = session.post(path, data={"code": "123456", "csrf": token}, headers={"Origin": "https://evil.example"})
        assert from_elsewhere.status_code == 403
    assert fake_queue.codes == fake_queue.enqueued == fake_queue.restarted == []
    answer = session.post("/people/wang/code", data={"code": "123456", "csrf": token})
    assert answer.status_code == 303 and fake_queue.codes == [("wang", "123456")]


# -- files: by ledger id, from inside the archive only


def test_a_crafted_file_url_is_refused(session: httpx.Client, seeded: Seeded) -> None:
    ids = file_ids(seeded)
    good = ids["25112000000000001001"]
    assert session.get(f"/file/{good}").content == seeded.files["25112000000000001001"]
    crafted = [
        f"/file/{max(ids.values()) + 1}", "/file/0", "/file/-1", f"/file/{good}.pdf", "/file/1e3",
        "/file/..%2Fledger.sqlite3", "/file/%2e%2e/ledger.sqlite3", "/file/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/file//etc/passwd", "/file/%2Fetc%2Fpasswd", f"/file/{seeded.root}/ledger.sqlite3",
        f"/file?path={seeded.root}/ledger.sqlite3", "/static/../ledger.sqlite3", "/static/%2e%2e/app.py",
    ]
    for path in crafted:
        answer = session.send(session.build_request("GET", httpx.URL(str(session.base_url).rstrip("/") + path)))
        assert answer.status_code == 404, path
        assert b"SQLite" not in answer.content and b"root:" not in answer.content


@pytest.mark.browser
def test_chromium_gets_no_file_from_a_crafted_url(page: Page, server: StatusServer, seeded: Seeded) -> None:
    page.goto(server.login_url)
    for path in ("/file/999999", "/file/../ledger.sqlite3", "/file/%2e%2e%2fledger.sqlite3", "/file//etc/passwd"):
        answer = page.goto(server.url + path)
        assert answer is not None and answer.status == 404, path
        expect(page.locator("body")).not_to_contain_text("SQLite")


def tamper(seeded: Seeded, number: str, path: str) -> None:
    """Write a path into the ledger behind its back, as a damaged or hostile ledger would hold it."""
    with sqlite3.connect(seeded.root / "ledger.sqlite3") as db:
        db.execute("update invoices set path = ? where number = ?", (path, number))


def test_a_ledger_path_leading_out_of_the_archive_is_refused(session: httpx.Client, seeded: Seeded, tmp_path: Path) -> None:
    ids = file_ids(seeded)
    secret = tmp_path / "outside.pdf"
    secret.write_bytes(b"%PDF outside the archive")
    victims = [number for number in ids if number != "25112000000000001001"]
    for number, path in zip(victims, ["../outside.pdf", str(secret), "2025-10/../../outside.pdf"], strict=False):
        tamper(seeded, number, path)
        assert session.get(f"/file/{ids[number]}").status_code == 404, path
    (seeded.root / "link.pdf").symlink_to(secret)  # inside by name, outside in fact
    tamper(seeded, "25112000000000001001", "link.pdf")
    assert session.get(f"/file/{ids['25112000000000001001']}").status_code == 404


def test_a_file_changed_since_it_was_verified_is_not_served(session: httpx.Client, seeded: Seeded) -> None:
    ids = file_ids(seeded)
    with Ledger.open(seeded.root) as ledger:
        entry = ledger.entry(ids["25112000000000001002"])
        assert entry is not None and entry.path is not None
    (seeded.root / entry.path).write_bytes(b"%PDF another file")
    answer = session.get(f"/file/{entry.id}")
    assert answer.status_code == 409 and "changed since it was verified" in answer.text


# -- starting it


def test_beyond_loopback_it_refuses_to_start_without_a_configured_token(tmp_path: Path) -> None:
    settings = load_settings(None, out=tmp_path)
    assert access_token(settings, "127.0.0.1") != access_token(settings, "::1")  # a new one per start
    for host in ("0.0.0.0", "192.168.1.20", "::", "status.example"):
        with pytest.raises(SettingsError, match="configure web_token"):
            access_token(settings, host)
    configured = load_settings(None, out=tmp_path, web_token="a-configured-token-123")
    assert access_token(configured, "0.0.0.0") == "a-configured-token-123"
    with pytest.raises(SettingsError, match="at least 16 characters"):
        load_settings(None, out=tmp_path, web_token="short")


def test_a_port_in_use_is_a_settings_error_that_names_it(server: StatusServer, seeded: Seeded, fake_queue: FakeQueue) -> None:
    with Ledger.open(seeded.root) as ledger:
        second = StatusServer(Sources(ledger=ledger, queue=fake_queue, settings=seeded.settings), TOKEN, port=server.port)
        with pytest.raises(SettingsError, match=f"cannot listen on 127.0.0.1:{server.port} .*choose another --port"):
            second.start()
    assert httpx.get(server.url + "/", trust_env=False).status_code == 403  # the first one still serves


def fapiao(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agent", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "NO_PROXY": "*", **(env or {})},
    )


def test_fapiao_serve_prints_its_url_with_the_token_first(seeded: Seeded) -> None:
    process = fapiao("serve", "--out", str(seeded.root), "--port", "0")
    try:
        assert process.stdout is not None
        first = process.stdout.readline().strip()
        base, _, token = first.partition("/?token=")
        assert base.startswith("http://127.0.0.1:") and len(token) >= 24
        with httpx.Client(trust_env=False, timeout=30) as browser:
            assert browser.get(base + "/").status_code == 403
            assert browser.get(first, follow_redirects=True).status_code == 200
            assert "北京甲科技有限公司" in browser.get(f"{base}/company/{A}/2025-10").text
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert token not in stderr


def test_fapiao_serve_beyond_loopback_without_a_token_exits_2(tmp_path: Path) -> None:
    process = fapiao("serve", "--out", str(tmp_path), "--host", "0.0.0.0", "--port", "0")
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert stdout == ""
    assert "configure web_token" in stderr
    assert not (tmp_path / "ledger.sqlite3").exists()  # refused before it opened anything
