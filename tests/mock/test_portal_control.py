"""The mock-only control surface (/__mock__/) and the scenarios behind it."""

from __future__ import annotations

import httpx
import pytest

from fixtures.portal.scenario import load_scenario, preset_names
from fixtures.pytest_plugin import MockPortal

QUERY_API = "/szzhzz/qlfpcx/v1/queryFpjcxx"
QUERY = {"Gjbq": "1", "Kprqq": "2025-10-01", "Kprqz": "2025-10-31", "PageNumber": 1, "PageSize": 10}

pytestmark = pytest.mark.mock_portal("plain", invoices_per_month=20)


def test_truth_lists_the_month_with_files_and_hashes(mock_portal: MockPortal) -> None:
    truth = mock_portal.truth("2025-10", "issued")
    first = truth["invoices"][0]
    assert (truth["month"], truth["direction"], truth["total"]) == ("2025-10", "issued", 20)
    assert truth["company"] == mock_portal.accounts()["companies"][0]["tax_id"] == first["Xsfnsrsbh"]
    assert first["has_file"] is True and set(first["sha256"]) == {"PDF", "OFD", "XML"}
    assert len(first["check_hex"]) == 4


def test_truth_matches_what_the_query_api_lists(mock_portal: MockPortal) -> None:
    client = mock_portal.log_in(mock_portal.client())
    listed = client.post(QUERY_API, json={**QUERY, "PageSize": 100}).json()["Response"]["Data"]["List"]
    truth = mock_portal.truth("2025-10", "issued")["invoices"]
    keys = listed[0].keys()
    assert [{key: row[key] for key in keys} for row in truth] == listed


def test_truth_refuses_a_bad_month(mock_portal: MockPortal) -> None:
    response = mock_portal.client().get("/__mock__/truth", params={"month": "2025-13"})
    assert response.status_code == 400


def test_accounts_lists_the_five_people(mock_portal: MockPortal) -> None:
    accounts = {account["mobile"]: account for account in mock_portal.accounts()["accounts"]}
    companies = [company["tax_id"] for company in mock_portal.accounts()["companies"]]
    assert sorted(accounts) == [f"1380000000{index}" for index in range(1, 6)]
    assert accounts["13800000001"]["roles"] == {companies[0]: ["办税员"]}
    assert accounts["13800000002"]["roles"][companies[1]] == ["法定代表人", "财务负责人", "办税员"]
    assert accounts["13800000003"]["confirm_first_login"] is True
    assert accounts["13800000004"]["roles"] == {} and accounts["13800000005"]["roles"] == {companies[0]: []}
    assert {account["password"] for account in accounts.values()} == {"Fapiao#2025"}


@pytest.mark.mock_portal("plain", password="Other#1")
def test_password_comes_from_the_scenario(mock_portal: MockPortal) -> None:
    assert {account["password"] for account in mock_portal.accounts()["accounts"]} == {"Other#1"}
    mock_portal.log_in(mock_portal.client())


@pytest.mark.mock_portal("flaky", seed=7)
def test_scenario_shows_preset_faults_and_seed(mock_portal: MockPortal) -> None:
    scenario = mock_portal.scenario()
    assert (scenario["name"], scenario["seed"]) == ("flaky", 7)
    assert [fault["kind"] for fault in scenario["faults"]][:3] == ["not_ready", "server_error", "rate_limit"]


def test_sms_outbox_by_account_parameter(mock_portal: MockPortal) -> None:
    mock_portal.log_in(mock_portal.client())
    by_account = mock_portal.client().get("/__mock__/sms", params={"account": "13800000001"}).json()
    assert by_account["messages"] == mock_portal.sms_outbox("13800000001")
    assert len(by_account["messages"]) == 1


def test_counters_count_routes_but_not_the_control_surface(mock_portal: MockPortal) -> None:
    client = mock_portal.client()
    client.get("/")
    client.get("/")
    mock_portal.accounts()
    counters = mock_portal.counters()
    assert counters["routes"] == {"/": 2}
    assert counters["live_sessions"] == 0


def test_reset_forgets_sessions_counters_outbox_locks_and_additions(mock_portal: MockPortal) -> None:
    client = mock_portal.log_in(mock_portal.client())
    company = mock_portal.accounts()["companies"][0]["tax_id"]
    for _ in range(5):
        body = {"creditCode": company, "account": "13800000002", "password": "wrong"}
        ticket = client.post("/sys-api/v1.0/auth/slider/verify", json={"distance": 1, "width": 1}).json()
        headers = {"X-TICKET-ID": ticket["data"]["ticket"]}
        client.post("/sys-api/v1.0/auth/enterprise/quick/accountLogin", json=body, headers=headers)
    mock_portal.server.portal.listings.add(company, "2025-10", "issued")
    mock_portal.reset()
    counters = mock_portal.counters()
    assert (counters["logins"], counters["routes"], counters["live_sessions"]) == ({}, {}, 0)
    assert mock_portal.sms_outbox("13800000001") == []
    assert mock_portal.truth("2025-10", "issued")["total"] == 20
    assert (
        client.post(QUERY_API, json=QUERY).json()["Response"]["Error"]["Code"] == "AuthFailure.SessionExpired"
    )
    mock_portal.log_in(mock_portal.client(), "13800000002")


def test_clock_needs_seconds(mock_portal: MockPortal) -> None:
    assert mock_portal.client().post("/__mock__/clock").status_code == 400


def test_pages_do_not_link_the_control_surface(mock_portal: MockPortal) -> None:
    client: httpx.Client = mock_portal.log_in(mock_portal.client())
    pages = [
        client.get(path).text
        for path in ("/", "/invoice-query/invoice-query", "/static/query.js", "/static/login.js")
    ]
    assert not any("__mock__" in page for page in pages)


def test_every_preset_loads() -> None:
    assert preset_names() == [
        "big",
        "captcha",
        "default",
        "firm",
        "flaky",
        "hostile",
        "maintenance",
        "password_roles",
        "plain",
        "realistic",
        "renamed",
        "session",
        "shifting",
        "sphandler",
    ]
    assert load_scenario("big").portal.invoices_per_month == 2000
    assert load_scenario("captcha").portal.captcha is True
    assert load_scenario("password_roles").portal.login_variant == "password_roles"
    renamed = load_scenario("renamed").portal
    assert (renamed.login_variant, renamed.entry) == ("renamed", "sphandler")
    assert load_scenario("sphandler").portal.entry == "sphandler"
    realistic, plain = load_scenario("realistic").portal, load_scenario("plain").portal
    assert (realistic.realistic, realistic.entry) == (True, "sphandler")
    assert (plain.realistic, plain.entry) == (False, "callback")
    assert load_scenario("default", realistic=True).portal.entry == "sphandler"  # realistic: by spHandler
    assert load_scenario("default", realistic=True, entry="callback").portal.entry == "callback"
    assert {fault.kind for fault in load_scenario("hostile").faults} == {
        "html_as_pdf", "wrong_bytes", "format_swap", "truncated_pdf", "drop_connection"
    }  # fmt: skip


def test_overrides_replace_portal_fields() -> None:
    assert load_scenario("captcha", lock_after=2).portal.model_dump(include={"captcha", "lock_after"}) == {
        "captcha": True, "lock_after": 2
    }  # fmt: skip


def test_unknown_scenario_names_the_presets() -> None:
    with pytest.raises(ValueError, match="no scenario 'nope': not a file and not one of big, captcha"):
        load_scenario("nope")
