"""The example tests of docs/mock-portal.md, run as they are shown there (test_portal_guide.py checks that the
guide's code blocks are this file's code, verbatim)."""

from __future__ import annotations

import hashlib
import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from fixtures.portal import drive
from fixtures.portal.faults import FaultSpec
from fixtures.portal.scenario import PortalSettings, Scenario
from fixtures.pytest_plugin import MockPortal

QUERY_PAGE = re.compile(r".*/invoice-query/invoice-query$")
FETCH = """async (url) => {
  const response = await fetch(url);
  const bytes = new Uint8Array(await response.arrayBuffer());
  return { status: response.status, type: response.headers.get("Content-Type"), body: Array.from(bytes) };
}"""


def file_url(row: dict[str, str]) -> str:
    kprq = re.sub(r"\D", "", row["Kprq"])  # "2025-10-08 10:17:57" -> "20251008101757"
    return f"/kpfw/fpjfzz/v1/exportDzfpwj?Fphm={row['Fphm']}&Kprq={kprq}&Wjgs=PDF"


def open_query_page(page: Page, mock_portal: MockPortal) -> httpx.Client:
    """Logs in over HTTP (the login APIs are not signed), hands the cookies to the browser, opens the page."""
    client = mock_portal.log_in(mock_portal.client())
    page.context.add_cookies(
        [{"name": name, "value": value, "url": mock_portal.url} for name, value in client.cookies.items()]
    )
    page.goto(mock_portal.url + "/invoice-query/invoice-query")
    return client


pytestmark = pytest.mark.browser  # this repository's marker for tests that need Chromium


@pytest.mark.mock_portal("realistic", invoices_per_month=20)
def test_log_in_through_the_page(page: Page, mock_portal: MockPortal) -> None:
    company = mock_portal.accounts()["companies"][0]["tax_id"]
    # the platform's front door; without a session it sends the browser to the SSO login page
    page.goto(mock_portal.url + "/szzhzz/spHandler?cdlj=digital-tax-account")
    page.fill('input[placeholder="统一社会信用代码/纳税人识别号"]', company)
    page.fill('input[placeholder="居民身份证号码/手机号码/用户名"]', "13800000001")
    page.fill('input[placeholder="个人用户密码"]', "Fapiao#2025")
    drive.drag_slider(page)  # press, move past the end of the track, release
    expect(page.locator(".drag .handler")).to_have_class(re.compile("handler_ok_bg"))
    page.click("button.login-btn")
    expect(page.locator(".sms-panel .sms-mobile")).to_have_text("138****0001")
    page.click(".sms-panel button.send-sms")
    page.fill('input[placeholder="请输入短信验证码"]', mock_portal.latest_sms_code("13800000001"))
    page.click(".sms-panel button.sms-login")
    page.wait_for_url(QUERY_PAGE)
    expect(page.locator(".person-name")).to_have_text("王办税")
    drive.query(page, "取得发票", "2025-10-01", "2025-10-31")  # the tab, the date-range picker, 查询
    expect(page.locator(".t-pagination__total")).to_have_text("共 20 条")
    assert mock_portal.counters()["logins"]["13800000001"]["attempts"] == 1


@pytest.mark.mock_portal("realistic", invoices_per_month=20)
def test_fetch_a_file_inside_the_page(page: Page, mock_portal: MockPortal) -> None:
    client = open_query_page(page, mock_portal)
    row = next(row for row in mock_portal.truth("2025-10", "received")["invoices"] if row["has_file"])
    answer = page.evaluate(FETCH, file_url(row))  # security.js signs it: a PDF
    assert hashlib.sha256(bytes(answer["body"])).hexdigest() == row["sha256"]["PDF"]
    outside = client.get(file_url(row))  # the same request from outside the page, same cookies: refused
    assert outside.status_code == 412 and not outside.content.startswith(b"%PDF")
    assert mock_portal.counters()["security"]["refused"] == {"unsigned": 1}


ONE_CHALLENGE = Scenario(
    name="one-challenge",
    portal=PortalSettings(realistic=True, invoices_per_month=20),
    faults=[FaultSpec(kind="antibot_412", target="file", count=1)],
)


@pytest.mark.mock_portal(ONE_CHALLENGE)
def test_an_antibot_answer_lasts_until_the_page_reloads(page: Page, mock_portal: MockPortal) -> None:
    open_query_page(page, mock_portal)
    row = next(row for row in mock_portal.truth("2025-10", "received")["invoices"] if row["has_file"])
    assert page.evaluate(FETCH, file_url(row))["status"] == 412  # the fault strikes
    assert page.evaluate(FETCH, file_url(row))["status"] == 412  # and sticks
    page.reload()  # a reload clears it (the page also gets a new signing key)
    assert page.evaluate(FETCH, file_url(row))["status"] == 200
    counters = mock_portal.counters()
    assert counters["faults"] == {"antibot_412": 1} and counters["security"]["antibot"] == {"antibot_412": 2}


LOST_AT_THE_FIRST_QUERY = Scenario(
    name="lost",
    portal=PortalSettings(realistic=False, invoices_per_month=5),  # plain: HTTP clients may call the APIs
    faults=[FaultSpec(kind="session_loss", target="query", signal="codemsg_refresh", count=1)],
)


@pytest.mark.mock_portal(LOST_AT_THE_FIRST_QUERY)
def test_a_session_lost_without_saying_so(mock_portal: MockPortal) -> None:
    client = mock_portal.log_in(mock_portal.client())
    query = {"Gjbq": "1", "Kprqq": "2025-10-01", "Kprqz": "2025-10-31", "PageNumber": 1, "PageSize": 10}
    first = client.post("/szzhzz/qlfpcx/v1/queryFpjcxx", json=query).json()["Response"]
    second = client.post("/szzhzz/qlfpcx/v1/queryFpjcxx", json=query).json()["Response"]
    assert first["Data"] == {"CodeMsg": "refresh"}  # no rows, no error, no 会话已失效
    assert second["Data"] == {"CodeMsg": "refresh"}  # the session stays lost
    assert client.get("/invoice-query/invoice-query").status_code == 302  # the page sends you to log in
    assert mock_portal.counters()["live_sessions"] == 0
