"""Login variants and entries as scenarios: a password login that answers with the roles (no SMS step), renamed
login paths, and the platform entered through spHandler with the code returned to Oauth2HandleServlet. Same
page selectors and `{"code": 1000, ...}` envelopes in every variant."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, expect

from fixtures.portal import drive
from fixtures.portal.http_login import slider_ticket
from fixtures.pytest_plugin import MockPortal

SSO_API = "/sys-api/v1.0/auth"
QUERY_PAGE = "/invoice-query/invoice-query"
QUERY_PAGE_URL = re.compile(r".*/invoice-query/invoice-query$")
OAUTH2 = "/fpjf/Oauth2HandleServlet"
SP_HANDLER = "/szzhzz/spHandler"
QUERY_API = "/szzhzz/qlfpcx/v1/queryFpjcxx"
QUERY = {"Gjbq": "1", "Kprqq": "2025-10-01", "Kprqz": "2025-10-31", "PageNumber": 1, "PageSize": 10}
PASSWORD = "Fapiao#2025"

StartPortal = Callable[..., MockPortal]


def company(portal: MockPortal, index: int = 0) -> str:
    tax_id: str = portal.accounts()["companies"][index]["tax_id"]
    return tax_id


def first_step(client: httpx.Client, path: str, tax_id: str, mobile: str) -> httpx.Response:
    body = {"creditCode": tax_id, "account": mobile, "password": PASSWORD}
    return client.post(SSO_API + path, json=body, headers={"X-TICKET-ID": slider_ticket(client)})


def lists_invoices(client: httpx.Client) -> bool:
    return "Data" in client.post(QUERY_API, json=QUERY).json()["Response"]


# ---- password_roles: the roles come with the password answer ----


@pytest.mark.mock_portal("password_roles", realistic=False)  # read over HTTP: plain traffic
def test_password_login_answers_with_the_roles_and_sends_no_sms(mock_portal: MockPortal) -> None:
    client = mock_portal.client()
    answer = first_step(client, "/enterprise/passwordLogin", company(mock_portal, 1), "13800000002").json()
    roles = [
        {"id": "01", "name": "法定代表人"},
        {"id": "02", "name": "财务负责人"},
        {"id": "03", "name": "办税员"},
    ]
    assert (answer["code"], answer["msg"]) == (1000, "处理成功！")
    assert (answer["data"]["next"], answer["data"]["roles"]) == ("role", roles)
    chosen = {"uuid": answer["data"]["uuid"], "roleId": "02"}
    code = client.post(f"{SSO_API}/enterprise/quick/quickLogin", json=chosen).json()["data"]["code"]
    assert client.get("/szzhzz/sso/callback", params={"code": code}).headers["location"] == QUERY_PAGE
    assert lists_invoices(client) and mock_portal.sms_outbox("13800000002") == []


@pytest.mark.mock_portal("password_roles", realistic=False)  # read over HTTP: plain traffic
def test_password_login_with_one_role_answers_the_code(mock_portal: MockPortal) -> None:
    answer = first_step(
        mock_portal.client(), "/enterprise/passwordLogin", company(mock_portal), "13800000001"
    )
    assert answer.json()["data"]["next"] == "done" and len(answer.json()["data"]["code"]) == 32


@pytest.mark.mock_portal("password_roles", realistic=False)  # read over HTTP: plain traffic
def test_password_login_refusals_keep_the_envelope(mock_portal: MockPortal) -> None:
    client = mock_portal.client()
    body = {"creditCode": company(mock_portal), "account": "13800000001", "password": "wrong"}
    headers = {"X-TICKET-ID": slider_ticket(client)}
    answer = client.post(f"{SSO_API}/enterprise/passwordLogin", json=body, headers=headers).json()
    assert (answer["code"], answer["msg"]) == (2035, "输入的个人账号或密码错误")


@pytest.mark.parametrize(
    ("scenario", "missing"),
    [
        ("password_roles", ["/enterprise/quick/accountLogin", "/enterprise/quick/SmsMessageLogin"]),
        ("password_roles", ["/user/second/sendSmsCodeByUuid"]),
        ("renamed", ["/enterprise/quick/accountLogin", "/enterprise/quick/SmsMessageLogin"]),
        ("default", ["/enterprise/passwordLogin", "/user/first/accountLogin", "/user/second/smsCodeLogin"]),
    ],
)
def test_a_province_has_only_its_own_login_paths(
    mock_portal_factory: StartPortal, scenario: str, missing: list[str]
) -> None:
    portal = mock_portal_factory(scenario, invoices_per_month=0)
    client = portal.client()
    assert [client.post(SSO_API + path, json={}).status_code for path in missing] == [404] * len(missing)


# ---- renamed paths ----


@pytest.mark.mock_portal("renamed", realistic=False)  # read over HTTP: plain traffic
def test_renamed_paths_log_in_with_an_sms_code(mock_portal: MockPortal) -> None:
    client = mock_portal.client()
    answer = first_step(client, "/user/first/accountLogin", company(mock_portal), "13800000001").json()
    assert (answer["code"], answer["data"]["mobile"]) == (1000, "138****0001")
    uuid = answer["data"]["uuid"]
    client.post(f"{SSO_API}/user/second/sendSmsCodeByUuid", json={"uuid": uuid})
    sms = {"uuid": uuid, "smsCode": mock_portal.latest_sms_code("13800000001")}
    step = client.post(f"{SSO_API}/user/second/smsCodeLogin", json=sms).json()
    assert (step["code"], step["data"]["next"]) == (1000, "done")


@pytest.mark.parametrize("scenario", ["default", "password_roles", "renamed", "sphandler"])
def test_the_plugin_logs_in_on_every_variant(mock_portal_factory: StartPortal, scenario: str) -> None:
    portal = mock_portal_factory(scenario, invoices_per_month=5, realistic=False)  # listed over HTTP
    assert lists_invoices(portal.log_in(portal.client(), "13800000002", role="办税员"))


# ---- entry through spHandler ----


@pytest.mark.mock_portal("sphandler", realistic=False)  # read over HTTP: plain traffic
def test_sphandler_sends_a_stranger_to_login_coming_back_to_oauth2_handle_servlet(
    mock_portal: MockPortal,
) -> None:
    client = mock_portal.client()
    for path in (f"{SP_HANDLER}?cdlj=digital-tax-account", QUERY_PAGE):
        location = client.get(path).headers["location"]
        redirect = parse_qs(urlsplit(location.replace("/#/login?", "/login?")).query)["redirect_uri"][0]
        assert redirect == f"{mock_portal.url}{OAUTH2}?cdPath={quote(QUERY_PAGE, safe='')}"
    assert client.get("/szzhzz/sso/callback", params={"code": "x"}).status_code == 404
    assert client.get(SP_HANDLER, params={"cdlj": "elsewhere"}).status_code == 404


@pytest.mark.mock_portal("sphandler", realistic=False)  # read over HTTP: plain traffic
def test_oauth2_handle_servlet_opens_the_session_and_goes_to_cd_path(mock_portal: MockPortal) -> None:
    client = mock_portal.client()
    answer = first_step(client, "/enterprise/quick/accountLogin", company(mock_portal), "13800000001").json()
    uuid = answer["data"]["uuid"]
    client.post(f"{SSO_API}/user/second/sendSmsCodeByUuid", json={"uuid": uuid})
    sms = {"uuid": uuid, "smsCode": mock_portal.latest_sms_code("13800000001")}
    code = client.post(f"{SSO_API}/enterprise/quick/SmsMessageLogin", json=sms).json()["data"]["code"]
    entered = client.get(OAUTH2, params={"cdPath": "//elsewhere.example/", "code": code, "state": "s"})
    assert entered.status_code == 302 and entered.headers["location"] == QUERY_PAGE  # never off this origin
    assert "DZFP_SSO_TOKEN=" in entered.headers["set-cookie"]
    assert client.get(SP_HANDLER, params={"cdlj": "digital-tax-account"}).headers["location"] == QUERY_PAGE
    assert lists_invoices(client)


# ---- in the browser: same selectors, different steps ----


@pytest.mark.browser
@pytest.mark.mock_portal("password_roles", invoices_per_month=5)
def test_browser_password_login_goes_straight_to_the_role_panel(page: Page, mock_portal: MockPortal) -> None:
    page.goto(mock_portal.url + QUERY_PAGE)
    drive.fill_account(page, company(mock_portal, 1), "13800000002", PASSWORD)
    expect(page.locator(".role-panel .role-item")).to_have_text(["法定代表人", "财务负责人", "办税员"])
    expect(page.locator(".sms-panel")).to_have_count(0)
    page.click('.role-panel .role-item:has-text("办税员")')
    page.click(".role-panel button.role-confirm")
    page.wait_for_url(QUERY_PAGE_URL)
    expect(page.locator(".person-name")).to_have_text("李总")


@pytest.mark.browser
@pytest.mark.mock_portal("password_roles", invoices_per_month=5)
def test_browser_password_login_with_one_role_goes_on(page: Page, mock_portal: MockPortal) -> None:
    page.goto(mock_portal.url + QUERY_PAGE)
    drive.fill_account(page, company(mock_portal), "13800000001", PASSWORD)
    page.wait_for_url(QUERY_PAGE_URL)


@pytest.mark.browser
@pytest.mark.mock_portal("renamed", invoices_per_month=5)
def test_browser_renamed_login_enters_through_oauth2_handle_servlet(
    page: Page, mock_portal: MockPortal
) -> None:
    seen: list[str] = []
    page.on("request", lambda request: seen.append(urlsplit(request.url).path))
    page.goto(f"{mock_portal.url}{SP_HANDLER}?cdlj=digital-tax-account")
    drive.fill_account(page, company(mock_portal), "13800000001", PASSWORD)
    expect(page.locator(".sms-panel .sms-mobile")).to_have_text("138****0001")
    page.click(".sms-panel button.send-sms")
    page.fill('input[placeholder="请输入短信验证码"]', mock_portal.latest_sms_code("13800000001"))
    page.click(".sms-panel button.sms-login")
    page.wait_for_url(QUERY_PAGE_URL)
    assert f"{SSO_API}/user/first/accountLogin" in seen and f"{SSO_API}/user/second/smsCodeLogin" in seen
    assert OAUTH2 in seen and "/szzhzz/sso/callback" not in seen
