"""Realistic mode: the page signs and encrypts, the server checks. A plain HTTP client holding a logged-in
session's cookies is refused by the query and file endpoints; the page itself (and `fetch` run inside it) is
not. Keys rotate on reload and on expiry. Over HTTP the checks are driven by a signer written here from the
description in fixtures/portal/security.py, the way someone reverse-engineering the page would."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from playwright.sync_api import Page, expect

from fixtures.portal import drive
from fixtures.pytest_plugin import MockPortal, start_mock_portal

QUERY_API = "/szzhzz/qlfpcx/v1/queryFpjcxx"
FILE_API = "/kpfw/fpjfzz/v1/exportDzfpwj"
KEY_API = "/szzhzz/cssSecurity/v1/getPublicKey"
QUERY = {"Gjbq": "2", "Kprqq": "2025-10-01", "Kprqz": "2025-10-31", "PageNumber": 1, "PageSize": 10}
FETCH_FILE = """async (url) => {
  const response = await fetch(url);
  const bytes = new Uint8Array(await response.arrayBuffer());
  let hex = "";
  for (const byte of bytes) hex += byte.toString(16).padStart(2, "0");
  return { status: response.status, type: response.headers.get("Content-Type"), hex };
}"""


@pytest.fixture(scope="module")
def portal() -> Iterator[MockPortal]:
    started = start_mock_portal("realistic", invoices_per_month=20)
    yield started
    started.stop()


@pytest.fixture
def client(portal: MockPortal) -> httpx.Client:
    portal.reset()
    return portal.log_in(portal.client())


def received_with_files(portal: MockPortal) -> list[dict[str, Any]]:
    return [row for row in portal.truth("2025-10", "received")["invoices"] if row["has_file"]]


def kprq(row: dict[str, Any]) -> str:
    return re.sub(r"\D", "", row["Kprq"])


def file_url(row: dict[str, Any], fmt: str = "PDF") -> str:
    return f"{FILE_API}?Fphm={row['Fphm']}&Kprq={kprq(row)}&Wjgs={fmt}"


class Signer:
    """Signs like the page: a key from getPublicKey, HMACs over the URL and body, the body encrypted."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        data = client.post(KEY_API).json()["Response"]["Data"]
        self.key_id, self.secret = data["KeyId"], base64.b64decode(data["PublicKey"])
        token = client.cookies["dzfp-ssotoken"]
        self.cipher = Cipher(
            algorithms.AES(hashlib.sha256(f"dzfp-ssotoken:{token}".encode()).digest()), modes.ECB()
        )

    def encrypt(self, body: dict[str, Any]) -> str:
        plain = (secrets.token_hex(16) + json.dumps(body)).encode()
        padding = 16 - len(plain) % 16
        encryptor = self.cipher.encryptor()
        sealed = encryptor.update(plain + bytes([padding]) * padding) + encryptor.finalize()
        return json.dumps({"Jmbw": base64.b64encode(sealed).decode()})

    def send(
        self, method: str, path: str, params: dict[str, str] | None = None, body: str = ""
    ) -> httpx.Response:
        url, headers = self.sign(method, path, params, body)
        return self.client.request(method, url, content=body or None, headers=headers)

    def sign(
        self, method: str, path: str, params: dict[str, str] | None = None, body: str = ""
    ) -> tuple[str, dict[str, str]]:
        canonical = path + (f"?{urlencode(params)}" if params else "")
        ruuid, los, stamp = secrets.token_hex(16), secrets.token_hex(16), "1700000000000"
        digest = hashlib.sha256(body.encode()).hexdigest()
        parts = [method, canonical, ruuid, los, stamp, digest]
        mac = self._hmac("\n".join(parts))
        proof = self._hmac(canonical)[:32]
        url = f"{canonical}{'&' if params else '?'}ruuid={ruuid}&urlyzm={proof}&los28199={los}"
        return url, {"lzkqow23819": f"1.{self.key_id}.{stamp}.{mac}", "Content-Type": "application/json"}

    def _hmac(self, text: str) -> str:
        return hmac.new(self.secret, text.encode(), hashlib.sha256).hexdigest()


# ---- a plain client with the session's cookies is refused ----


def test_a_plain_client_with_the_session_cookies_gets_no_listing_and_no_file(
    portal: MockPortal, client: httpx.Client
) -> None:
    assert {"DZFP_SSO_TOKEN", "dzfp-ssotoken"} <= set(client.cookies)
    row = received_with_files(portal)[0]
    listing = client.post(QUERY_API, json=QUERY)
    file = client.get(file_url(row), params={"Qzlx": "02", "timeStampId": "1700000000000"})
    for answer in (listing, file):
        assert answer.status_code == 412 and answer.headers["content-type"].startswith("text/html")
        assert (
            "<script>" in answer.text
            and "Response" not in answer.text
            and not answer.content.startswith(b"%PDF")
        )
    security = portal.counters()["security"]
    assert (security["refused"], security["answers_412"]) == ({"unsigned": 2}, 2)
    assert portal.counters()["downloads_total"] == 0


def test_signed_calls_pass_and_their_bodies_are_decrypted(portal: MockPortal, client: httpx.Client) -> None:
    signer = Signer(client)
    listing = signer.send("POST", QUERY_API, body=signer.encrypt(QUERY)).json()["Response"]["Data"]
    row = received_with_files(portal)[0]
    params = {"Fphm": row["Fphm"], "Kprq": kprq(row), "Wjgs": "PDF"}
    file = signer.send("GET", FILE_API, {**params, "Qzlx": "02", "timeStampId": "1"})
    assert (listing["Total"], len(listing["List"])) == (20, 10)
    assert hashlib.sha256(file.content).hexdigest() == row["sha256"]["PDF"]
    without_qzlx = signer.send("GET", FILE_API, params).json()["Response"]["Error"]
    assert without_qzlx["Code"] == "InvalidParameter"


def test_a_plain_json_body_is_refused_even_when_signed(portal: MockPortal, client: httpx.Client) -> None:
    signer = Signer(client)
    plain = signer.send("POST", QUERY_API, body=json.dumps(QUERY))
    garbled = signer.send("POST", QUERY_API, body=json.dumps({"Jmbw": base64.b64encode(b"x" * 48).decode()}))
    for answer in (plain, garbled):
        assert answer.json()["Response"]["Error"] == {
            "Code": "InvalidParameter.Jmbw",
            "Message": "请求报文解密失败",
        }
    assert portal.counters()["security"]["refused"] == {"plain_body": 1, "bad_body": 1}


def test_a_tampered_url_or_a_stale_key_gets_the_challenge(portal: MockPortal, client: httpx.Client) -> None:
    signer = Signer(client)
    assert signer.send("POST", QUERY_API, body=signer.encrypt(QUERY)).status_code == 200
    first, second = received_with_files(portal)[:2]
    params = {"Fphm": first["Fphm"], "Kprq": kprq(first), "Wjgs": "PDF", "Qzlx": "02", "timeStampId": "1"}
    url, headers = signer.sign("GET", FILE_API, params)
    assert client.get(url.replace(first["Fphm"], second["Fphm"]), headers=headers).status_code == 412
    portal.advance_clock(301)  # past key_rotation_seconds = 300
    assert signer.send("POST", QUERY_API, body=signer.encrypt(QUERY)).status_code == 412
    assert Signer(client).send("POST", QUERY_API, body=signer.encrypt(QUERY)).status_code == 200  # a new key
    assert portal.counters()["security"]["refused"] == {"bad_signature": 1, "stale_key": 1}


def test_a_dead_session_is_said_before_any_signature_is_checked(
    portal: MockPortal, client: httpx.Client
) -> None:
    portal.advance_clock(1801)
    error = client.post(QUERY_API, json=QUERY).json()["Response"]["Error"]
    assert error == {"Code": "AuthFailure.SessionExpired", "Message": "会话已失效，请重新登录"}


def test_realistic_is_entered_through_sphandler_and_loads_the_script(portal: MockPortal) -> None:
    stranger = portal.client()
    assert "Oauth2HandleServlet" in stranger.get("/invoice-query/invoice-query").headers["location"]
    assert '<script src="/static/security.js"></script>' in stranger.get("/").text
    plain = start_mock_portal("plain", invoices_per_month=0)
    try:
        assert "security.js" not in plain.client().get("/").text
        assert plain.client().post(KEY_API).status_code == 404
    finally:
        plain.stop()


# ---- the page itself ----


def open_query_page(page: Page, portal: MockPortal) -> None:
    client = portal.log_in(portal.client())
    page.context.add_cookies([{"name": k, "value": v, "url": portal.url} for k, v in client.cookies.items()])
    page.goto(portal.url + drive.QUERY_PAGE)


@pytest.mark.browser
def test_the_page_signs_its_query_and_its_downloads(page: Page, portal: MockPortal) -> None:
    portal.reset()
    open_query_page(page, portal)
    with page.expect_request(f"**{QUERY_API}*") as sent:
        drive.query(page)
    expect(page.locator(".t-pagination__total")).to_have_text("共 20 条")
    request = sent.value
    assert re.search(r"\?ruuid=[0-9a-f]{32}&urlyzm=[0-9a-f]{32}&los28199=[0-9a-f]{32}$", request.url)
    assert re.fullmatch(r"1\.[0-9a-f]{16}\.\d{13}\.[0-9a-f]{64}", request.headers["lzkqow23819"])
    assert set(request.post_data_json or {}) == {"Jmbw"}
    row = received_with_files(portal)[0]
    page.fill('input[placeholder="发票号码"]', row["Fphm"])
    page.click("button.query-btn")
    expect(page.locator("tr.t-table__row")).to_have_count(1)
    page.click("button.row-download")
    with page.expect_download() as download:
        page.click('.t-dialog.download-dialog button[data-format="PDF"]')
    assert hashlib.sha256(download.value.path().read_bytes()).hexdigest() == row["sha256"]["PDF"]
    assert portal.counters()["security"]["refused"] == {}


@pytest.mark.browser
def test_the_page_exports_through_the_signed_api(page: Page, portal: MockPortal) -> None:
    portal.reset()
    open_query_page(page, portal)
    drive.query(page)
    expect(page.locator(".t-pagination__total")).to_have_text("共 20 条")
    page.click(".export-btn")
    with page.expect_download() as download:
        page.click(".t-dropdown__item.export-all")
    assert download.value.path().read_bytes().startswith(b"PK")  # an xlsx
    expect(page.locator(".t-message.t-is-success")).to_have_text("已导出 20 条")
    assert portal.counters()["export_calls"] == 1 and portal.counters()["security"]["refused"] == {}


@pytest.mark.browser
def test_fetch_inside_the_page_gets_the_file(page: Page, portal: MockPortal) -> None:
    portal.reset()
    open_query_page(page, portal)
    row = received_with_files(portal)[1]
    answer = page.evaluate(FETCH_FILE, file_url(row, "XML"))
    assert (answer["status"], answer["type"]) == (200, "application/xml")
    assert hashlib.sha256(bytes.fromhex(answer["hex"])).hexdigest() == row["sha256"]["XML"]


@pytest.mark.browser
def test_xml_http_request_is_signed_too(page: Page, portal: MockPortal) -> None:
    portal.reset()
    open_query_page(page, portal)
    script = """(body) => new Promise((resolve) => {
      const request = new XMLHttpRequest();
      request.open("POST", "/szzhzz/qlfpcx/v1/queryFpjcxx");
      request.setRequestHeader("Content-Type", "application/json");
      request.onload = () => resolve([request.status, request.responseText]);
      request.send(JSON.stringify(body));
    })"""
    status, text = page.evaluate(script, QUERY)
    assert status == 200 and json.loads(text)["Response"]["Data"]["Total"] == 20


@pytest.mark.browser
def test_expired_keys_get_412_until_the_page_reloads(page: Page, portal: MockPortal) -> None:
    portal.reset()
    open_query_page(page, portal)
    row = received_with_files(portal)[0]
    assert page.evaluate(FETCH_FILE, file_url(row))["status"] == 200
    assert portal.expire_keys() == 1
    stale = page.evaluate(FETCH_FILE, file_url(row))
    assert (stale["status"], stale["type"]) == (412, "text/html; charset=utf-8")
    page.reload()
    assert page.evaluate(FETCH_FILE, file_url(row))["status"] == 200
    security = portal.counters()["security"]
    assert (security["refused"], security["keys_issued"]) == ({"stale_key": 1}, 2)


@pytest.mark.browser
def test_the_page_fetches_a_new_key_before_the_old_one_expires(page: Page) -> None:
    portal = start_mock_portal("realistic", invoices_per_month=5, key_rotation_seconds=1)
    try:
        open_query_page(page, portal)
        row = received_with_files(portal)[0]
        for _ in range(3):
            page.wait_for_timeout(900)
            assert page.evaluate(FETCH_FILE, file_url(row))["status"] == 200
        assert portal.counters()["security"]["keys_issued"] >= 3
    finally:
        portal.stop()
