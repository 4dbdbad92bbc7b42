"""The company switch (flows/switch.py): answers judged offline, and the page's 切换企业 driven in Chromium."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from agentkit import run_async
from firmkit import FIRM, linked, mock_persons, person_counters
from playwright.async_api import Page

from agent import errors
from agent.browser import BrowserSession, find_chromium
from agent.config import Person
from agent.flows.login import LoginInput, login
from agent.flows.search import open_query_page
from agent.flows.switch import (
    current_company,
    linked_companies,
    linked_companies_of,
    sso_answer,
    switch_company,
)
from agent.human import make_captcha_solver, make_sms_source
from agent.login_memory import LoginMemory
from agent.portal import PortalProfile
from fixtures.pytest_plugin import MockPortal

URL = "https://tpass.example.gov.cn/sys-api/v1.0/idm/internal/relation/selectRelationList"
JSON_HEADERS = {"content-type": "application/json"}
A, B = "91110108MA01ABCDE1", "91310000MA1FL00002"
T = TypeVar("T")
Steps = Callable[[Page, PortalProfile], Awaitable[T]]


def answer(body: object, status: int = 200) -> dict[str, object]:
    return sso_answer(status, JSON_HEADERS, json.dumps(body, ensure_ascii=False).encode(), URL)


def test_the_company_list_is_read_from_the_answers_own_fields() -> None:
    listed = answer({"code": 1000, "msg": "处理成功！", "data": {"list": [
        {"Nsrsbh": A.lower(), "Nsrmc": "甲公司", "Sfmc": "办税员", "Dqqy": "Y"},
        {"Nsrsbh": B, "Nsrmc": "乙公司", "Sfmc": "财务负责人", "Dqqy": "N"},
    ]}})
    companies = linked_companies_of(listed)
    assert [(c.tax_id, c.name, c.role, c.current) for c in companies] == [
        (A, "甲公司", "办税员", True), (B, "乙公司", "财务负责人", False),
    ]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"code": 2034, "msg": "您与该企业不存在关联关系"}, 200, errors.NotLinked),
        ({"code": 1999, "msg": "未知"}, 200, errors.PortalChanged),
        ({"Response": {"Error": {"Code": "AuthFailure.SessionExpired", "Message": "会话已失效，请重新登录"}}}, 200, errors.SessionLost),
        ({"Response": {"Error": {"Code": "302", "Message": "请重新登录"}}}, 200, errors.SessionLost),
        ({"Response": {"Data": {}}}, 200, errors.PortalChanged),
        ({"code": 1000, "data": {}}, 200, None),
    ],
)
def test_answers_mean_what_the_portal_says(body: object, status: int, error: type[Exception] | None) -> None:
    if error is None:
        with pytest.raises(errors.PortalChanged, match="no data.list"):
            linked_companies_of(answer(body, status))
        return
    with pytest.raises(error):
        answer(body, status)


def test_a_page_instead_of_json_is_the_portal_down_or_the_session_gone() -> None:
    with pytest.raises(errors.PortalUnavailable):
        sso_answer(503, {"content-type": "text/html"}, "<html><title>系统维护</title>系统维护中</html>".encode(), URL)
    with pytest.raises(errors.SessionLost):
        sso_answer(302, {"location": "https://tpass.example.gov.cn/login"}, b"", URL)


async def _in_a_logged_in_page(portal: MockPortal, person: Person, state: Path, steps: Steps[T]) -> T:
    profile = PortalProfile(portal_url=portal.url)
    account = person.login_account()
    async with BrowserSession(find_chromium(), state) as browser:
        context = await browser.new_context("p")
        page = await context.new_page()
        await open_query_page(page, profile)
        given = LoginInput(
            "p", account, account.resolve_password("p"), make_captcha_solver("prompt", False, state, 5),
            make_sms_source(account.sms, False, account.login, 30), False, LoginMemory(state, "p"),
        )
        await login(page, profile, given)
        return await steps(page, profile)


@pytest.mark.parametrize("realistic", [False, True], ids=["plain", "realistic"])
def test_the_page_lists_the_persons_companies_and_switches_without_password_or_sms(
    mock_portal_factory: Callable[..., MockPortal], tmp_path: Path, realistic: bool
) -> None:
    portal = mock_portal_factory("firm", realistic=realistic, **FIRM)
    person = mock_persons(portal)["zhou"]
    companies = linked(portal, "zhou")

    async def steps(page: Page, profile: PortalProfile) -> tuple[list[Any], str]:
        listed = await linked_companies(page, profile)
        await switch_company(page, profile, companies[2])
        now = await current_company(page, profile)
        await switch_company(page, profile, companies[2])  # there already: no call
        return listed, now

    listed, now = run_async(_in_a_logged_in_page(portal, person, tmp_path, steps))
    assert [company.tax_id for company in listed] == companies
    assert [company.current for company in listed] == [True] + [False] * (len(companies) - 1)
    assert now == companies[2]
    counters = person_counters(portal, "zhou")
    assert (counters["switches"], counters["password_logins"], counters["sms_sent"]) == (1, 1, 1)


@pytest.mark.mock_portal("firm", **FIRM)
def test_a_company_not_in_the_persons_list_is_refused_without_a_switch(mock_portal: MockPortal, tmp_path: Path) -> None:
    person = mock_persons(mock_portal)["zhou"]
    stranger = next(c for c in linked(mock_portal, "wu") if c not in linked(mock_portal, "zhou"))

    async def steps(page: Page, profile: PortalProfile) -> None:
        await switch_company(page, profile, stranger)

    with pytest.raises(errors.CompanyNotLinked, match=stranger):
        run_async(_in_a_logged_in_page(mock_portal, person, tmp_path, steps))
    assert person_counters(mock_portal, "zhou")["switches"] == 0
