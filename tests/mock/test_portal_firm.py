"""The accounting firm (preset `firm`): persons linked to several companies, each link with a role; a person logs
in once and switches companies (selectRelationList, changeUser) without a password or an SMS; SMS codes go to
each person's own phone; a second login kicks the first out; counters per person. Over HTTP on the plain
scenario, and in Chromium through the query page's 切换企业 (plain and realistic)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from pydantic import ValidationError

from fixtures.portal import drive
from fixtures.portal.scenario import load_scenario
from fixtures.pytest_plugin import MockPortal, start_mock_portal

RELATIONS = "/sys-api/v1.0/idm/internal/relation/selectRelationList"
CHANGE_USER = "/sys-api/v1.0/auth/oauth2/changeUser"
QUERY_API = "/szzhzz/qlfpcx/v1/queryFpjcxx"
QUERY = {"Gjbq": "1", "Kprqq": "2025-10-01", "Kprqz": "2025-10-31", "PageNumber": 1, "PageSize": 100}
OK = {"code": 1000, "msg": "处理成功！"}


@pytest.fixture(scope="module")
def firm() -> Iterator[MockPortal]:
    started = start_mock_portal("firm", realistic=False)  # plain: these tests send the API calls themselves
    yield started
    started.stop()


@pytest.fixture
def portal(firm: MockPortal) -> MockPortal:
    firm.reset()
    return firm


def persons(portal: MockPortal) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = portal.accounts()["persons"]
    return listed


def tax_ids(person: dict[str, Any]) -> list[str]:
    return [company["tax_id"] for company in person["companies"]]


def not_linked(portal: MockPortal, person: dict[str, Any]) -> str:
    linked = set(tax_ids(person))
    return next(c["tax_id"] for c in portal.accounts()["companies"] if c["tax_id"] not in linked)


def counts(**done: int) -> dict[str, int]:
    """A person's counters: zero but for `done`."""
    keys = ("password_logins", "sms_sent", "live_sessions", "max_live_sessions", "switches")
    return {key: done.get(key, 0) for key in keys}


def sso(client: httpx.Client, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = client.post(path, json=body or {}).json()
    return answer


def listed(client: httpx.Client) -> dict[str, Any]:
    data: dict[str, Any] = client.post(QUERY_API, json=QUERY).json()["Response"]["Data"]
    return data


def test_the_preset_links_three_persons_to_twelve_companies_with_roles(portal: MockPortal) -> None:
    accounts = portal.accounts()
    people, companies = accounts["persons"], [company["tax_id"] for company in accounts["companies"]]
    assert [person["mobile"] for person in people] == ["13900000001", "13900000002", "13900000003"]
    assert len(companies) == 12 and {person["name"] for person in people} == {"周会计", "吴会计", "郑会计"}
    links = Counter(tax_id for person in people for tax_id in tax_ids(person))
    assert set(links) == set(companies) and sorted(Counter(links.values()).items()) == [(1, 6), (2, 6)]
    assert [len(person["companies"]) for person in people] == [6, 6, 6]
    roles = {company["role"] for person in people for company in person["companies"]}
    assert roles == {"办税员", "财务负责人"}
    logins = {account["mobile"]: account for account in accounts["accounts"]}
    assert set(logins) == {f"1380000000{n}" for n in range(1, 6)} | {
        "13900000001",
        "13900000002",
        "13900000003",
    }
    first = people[0]
    assert logins[first["mobile"]]["roles"] == {c["tax_id"]: [c["role"]] for c in first["companies"]}
    assert first["masked_mobile"] == "139****0001" and first["password"] == "Fapiao#2025"


def test_relation_list_names_every_linked_company_and_the_current_one(portal: MockPortal) -> None:
    person = persons(portal)[0]
    client = portal.log_in(portal.client(), person["mobile"], tax_ids(person)[1])
    expected = [
        {"Nsrsbh": c["tax_id"], "Nsrmc": c["name"], "Sfmc": c["role"], "Dqqy": "Y" if index == 1 else "N"}
        for index, c in enumerate(person["companies"])
    ]
    assert sso(client, RELATIONS) == {**OK, "data": {"list": expected}}


def test_change_user_switches_the_same_session_without_password_or_sms(portal: MockPortal) -> None:
    person = persons(portal)[1]
    start, target = person["companies"][0], person["companies"][4]
    client = portal.log_in(portal.client(), person["mobile"], start["tax_id"])
    cookies = dict(client.cookies)
    assert listed(client)["List"][0]["Xsfnsrsbh"] == start["tax_id"]
    answer = sso(client, CHANGE_USER, {"Nsrsbh": target["tax_id"]})
    assert answer == {
        **OK,
        "data": {"Nsrsbh": target["tax_id"], "Nsrmc": target["name"], "Sfmc": target["role"]},
    }
    data = listed(client)
    truth = portal.truth("2025-10", "issued", company=target["tax_id"])
    assert data["Total"] == truth["total"] == 20
    assert [row["Fphm"] for row in data["List"]] == [row["Fphm"] for row in truth["invoices"]]
    current = [item["Nsrsbh"] for item in sso(client, RELATIONS)["data"]["list"] if item["Dqqy"] == "Y"]
    assert current == [target["tax_id"]] and dict(client.cookies) == cookies
    page = client.get(drive.QUERY_PAGE).text
    assert f'<span class="current-company" data-tax-id="{target["tax_id"]}">{target["name"]}</span>' in page
    counted = portal.counters()["persons"][person["mobile"]]
    assert counted == counts(password_logins=1, sms_sent=1, live_sessions=1, max_live_sessions=1, switches=1)


def test_change_user_refuses_a_company_not_linked_and_stays(portal: MockPortal) -> None:
    person = persons(portal)[2]
    client = portal.log_in(portal.client(), person["mobile"], tax_ids(person)[0])
    for body in ({"Nsrsbh": not_linked(portal, person)}, {"Nsrsbh": ""}, {}):
        answer = sso(client, CHANGE_USER, body)
        assert (answer["code"], answer["msg"]) == (2034, "未查询到您与该企业的关联关系信息")
    assert listed(client)["List"][0]["Xsfnsrsbh"] == tax_ids(person)[0]
    assert portal.counters()["persons"][person["mobile"]]["switches"] == 0


def test_each_person_gets_sms_codes_on_their_own_phone(portal: MockPortal) -> None:
    first, second, third = persons(portal)
    portal.log_in(portal.client(), first["mobile"], tax_ids(first)[0])
    portal.log_in(portal.client(), second["mobile"], tax_ids(second)[0])
    assert [len(portal.sms_outbox(p["mobile"])) for p in (first, second, third)] == [1, 1, 0]
    assert portal.sms_outbox("13800000001") == []
    counted = portal.counters()["persons"]
    assert [counted[p["mobile"]]["sms_sent"] for p in (first, second, third)] == [1, 1, 0]
    assert [counted[p["mobile"]]["live_sessions"] for p in (first, second, third)] == [1, 1, 0]


def test_a_second_login_of_a_person_kicks_the_first_out(portal: MockPortal) -> None:
    person = persons(portal)[0]
    first = portal.log_in(portal.client(), person["mobile"], tax_ids(person)[0])
    portal.advance_clock(61)  # the phone may get another code
    second = portal.log_in(portal.client(), person["mobile"], tax_ids(person)[3])
    for path, body in ((RELATIONS, {}), (CHANGE_USER, {"Nsrsbh": tax_ids(person)[1]})):
        error = sso(first, path, body)["Response"]["Error"]
        assert (error["Code"], error["Message"]) == (
            "AuthFailure.KickedOut",
            "您的账号已在其他地方登录，被踢下线",
        )
    assert sso(second, CHANGE_USER, {"Nsrsbh": tax_ids(person)[1]})["code"] == 1000
    counted = portal.counters()["persons"][person["mobile"]]
    assert counted == counts(password_logins=2, sms_sent=2, live_sessions=1, max_live_sessions=1, switches=1)


def test_without_a_session_the_apis_say_it_has_expired(portal: MockPortal) -> None:
    error = sso(portal.client(), RELATIONS)["Response"]["Error"]
    assert error["Code"] == "AuthFailure.SessionExpired"


def test_an_idle_session_ends_and_counts_as_not_live(portal: MockPortal) -> None:
    person = persons(portal)[0]
    client = portal.log_in(portal.client(), person["mobile"], tax_ids(person)[0])
    portal.advance_clock(1801)
    assert portal.counters()["persons"][person["mobile"]]["live_sessions"] == 0
    assert sso(client, RELATIONS)["Response"]["Error"]["Code"] == "AuthFailure.SessionExpired"


def test_reset_forgets_what_persons_did(portal: MockPortal) -> None:
    person = persons(portal)[0]
    client = portal.log_in(portal.client(), person["mobile"], tax_ids(person)[0])
    sso(client, CHANGE_USER, {"Nsrsbh": tax_ids(person)[1]})
    portal.reset()
    assert portal.counters()["persons"] == {p["mobile"]: counts() for p in persons(portal)}


@pytest.mark.mock_portal("plain", invoices_per_month=5)
def test_without_a_firm_the_portal_is_as_before(mock_portal: MockPortal) -> None:
    accounts = mock_portal.accounts()
    assert "persons" not in accounts and len(accounts["companies"]) == 3 and len(accounts["accounts"]) == 5
    client = mock_portal.log_in(mock_portal.client(), "13800000002")
    page = client.get(drive.QUERY_PAGE).text
    assert "company-switch" not in page and "COMPANY-SWITCH" not in page
    assert '<span class="person-name">李总</span></span>\n' in page
    assert "persons" not in mock_portal.counters()


def test_more_persons_than_companies_is_refused() -> None:
    with pytest.raises(ValidationError, match="firm_companies must be at least firm_persons"):
        load_scenario("firm", firm_persons=5, firm_companies=4)
    settings = load_scenario("firm", firm_persons=2, firm_companies=4, companies=6).portal
    assert (settings.universe_companies, load_scenario("plain").portal.universe_companies) == (6, 3)


# ---- in Chromium: log in as a person, 切换企业, the other company's listing ----


def log_in_on_the_page(page: Page, portal: MockPortal, mobile: str, company: str) -> None:
    page.goto(portal.url + drive.QUERY_PAGE)
    drive.fill_account(page, company, mobile, "Fapiao#2025")
    expect(page.locator(".sms-panel .sms-mobile")).to_have_text(f"139****{mobile[-4:]}")
    page.click(".sms-panel button.send-sms")
    expect(page.locator(".sms-panel button.send-sms")).to_be_disabled()
    page.fill('input[placeholder="请输入短信验证码"]', portal.latest_sms_code(mobile))
    page.click(".sms-panel button.sms-login")
    page.wait_for_url(re.compile(r".*/invoice-query/invoice-query$"))


@pytest.mark.browser
@pytest.mark.parametrize("realistic", [False, True], ids=["plain", "realistic"])
def test_a_person_switches_company_on_the_query_page(page: Page, realistic: bool) -> None:
    portal = start_mock_portal("firm", realistic=realistic)
    try:
        person = portal.accounts()["persons"][0]
        start, target = person["companies"][0], person["companies"][2]  # target: shared, as 财务负责人
        log_in_on_the_page(page, portal, person["mobile"], start["tax_id"])
        current = page.locator(".company-switch .current-company")
        expect(current).to_have_attribute("data-tax-id", start["tax_id"])
        page.click(".company-switch button.switch-company")
        items = page.locator(".t-dialog.company-dialog li.company-item")
        expect(items).to_have_count(6)
        assert [item.get_attribute("data-tax-id") for item in items.all()] == tax_ids(person)
        expect(page.locator("li.company-item.t-is-current")).to_have_attribute("data-tax-id", start["tax_id"])
        expect(items.nth(2)).to_contain_text(target["role"])
        page.click(f'.t-dialog.company-dialog li.company-item[data-tax-id="{target["tax_id"]}"]')
        expect(current).to_have_attribute("data-tax-id", target["tax_id"])
        expect(page.locator(".top-bar .company-name")).to_have_text(target["name"])
        drive.query(page)  # 取得发票, 2025-10
        truth = portal.truth("2025-10", "received", company=target["tax_id"])
        expect(page.locator(".t-pagination__total")).to_have_text(f"共 {truth['total']} 条")
        buyers = page.locator(".t-table tbody tr.t-table__row td:nth-child(8)").all_inner_texts()
        assert buyers == [target["tax_id"]] * truth["total"]
        counters = portal.counters()
        once = counts(password_logins=1, sms_sent=1, live_sessions=1, max_live_sessions=1, switches=1)
        assert counters["persons"][person["mobile"]] == once
        assert counters["security"]["refused"] == {}
        assert (counters["security"]["keys_issued"] >= 2) == realistic  # signed before and after the switch
    finally:
        portal.stop()
