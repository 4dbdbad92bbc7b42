"""Anti-bot answers and session-loss signals as faults: each answer as the reference describes it, on the query
API and on files; an anti-bot answer sticks until the page is loaded again, a lost session stays lost."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page
from pydantic import ValidationError

from fixtures.portal.faults import FaultSpec
from fixtures.portal.scenario import PortalSettings, Scenario
from fixtures.pytest_plugin import MockPortal, start_mock_portal

FILE_API = "/kpfw/fpjfzz/v1/exportDzfpwj"
QUERY_API = "/szzhzz/qlfpcx/v1/queryFpjcxx"
QUERY_PAGE = "/invoice-query/invoice-query"
QUERY = {"Gjbq": "2", "Kprqq": "2025-10-01", "Kprqz": "2025-10-31", "PageNumber": 1, "PageSize": 10}
StartPortal = Callable[..., tuple[MockPortal, httpx.Client]]


@pytest.fixture
def start_portal() -> Iterator[StartPortal]:
    """A portal with the given faults and a client logged in on it."""
    started: list[MockPortal] = []

    def start(*faults: dict[str, Any], **settings: Any) -> tuple[MockPortal, httpx.Client]:
        # over HTTP the answers are read bare: plain traffic unless a test asks for the page's signing
        settings = {"realistic": False, **settings}
        portal_settings = PortalSettings(invoices_per_month=10, sms_resend_seconds=0, **settings)
        scenario = Scenario(
            name="test", faults=[FaultSpec(**fault) for fault in faults], portal=portal_settings
        )
        started.append(start_mock_portal(scenario))
        return started[-1], started[-1].log_in(started[-1].client())

    yield start
    for portal in started:
        portal.stop()


def first_file(portal: MockPortal) -> dict[str, Any]:
    return next(row for row in portal.truth("2025-10", "received")["invoices"] if row["has_file"])


def get_file(client: httpx.Client, row: dict[str, Any]) -> httpx.Response:
    return client.get(
        FILE_API, params={"Fphm": row["Fphm"], "Kprq": re.sub(r"\D", "", row["Kprq"]), "Wjgs": "PDF"}
    )


def call(client: httpx.Client, target: str, portal: MockPortal) -> httpx.Response:
    return get_file(client, first_file(portal)) if target == "file" else client.post(QUERY_API, json=QUERY)


def is_real_answer(response: httpx.Response, target: str) -> bool:
    if target == "file":
        return response.status_code == 200 and response.content.startswith(b"%PDF-")
    return "Data" in response.json()["Response"] and "List" in response.json()["Response"]["Data"]


# ---- anti-bot ----


def assert_antibot_answer(kind: str, response: httpx.Response) -> None:
    if kind == "antibot_412":
        assert response.status_code == 412 and response.headers["content-type"].startswith("text/html")
        assert re.search(r"<script>.*document\['cookie'\].*</script>", response.text)
    elif kind == "antibot_script":
        assert (
            response.status_code == 200
            and response.text.startswith("<script>")
            and len(response.text) > 10_000
        )
    else:
        answer = response.json()
        assert response.status_code == 200 and (answer["Code"], answer["Y"]) == (0, False) and answer["T"]


@pytest.mark.parametrize("target", ["query", "file"])
@pytest.mark.parametrize("kind", ["antibot_412", "antibot_script", "antibot_json"])
def test_antibot_answer_sticks_until_the_page_is_loaded_again(
    start_portal: StartPortal, kind: str, target: str
) -> None:
    portal, client = start_portal({"kind": kind, "target": target, "count": 1})
    first, again = call(client, target, portal), call(client, "query", portal)
    assert_antibot_answer(kind, first)
    assert_antibot_answer(kind, again)  # every API call of the session, until a reload
    assert client.get(QUERY_PAGE).status_code == 200  # the reload
    assert is_real_answer(call(client, target, portal), target)
    counters = portal.counters()
    assert (counters["faults"], counters["security"]["antibot"]) == ({kind: 1}, {kind: 2})
    assert counters["security"]["answers_412"] == (2 if kind == "antibot_412" else 0)


@pytest.mark.browser
def test_antibot_on_a_file_fetched_inside_the_realistic_page_clears_on_reload(page: Page) -> None:
    fault = FaultSpec(kind="antibot_json", target="file", count=1)
    portal = start_mock_portal(
        Scenario(name="t", faults=[fault], portal=PortalSettings(invoices_per_month=5, realistic=True))
    )
    try:
        client = portal.log_in(portal.client())
        page.context.add_cookies(
            [{"name": k, "value": v, "url": portal.url} for k, v in client.cookies.items()]
        )
        page.goto(portal.url + QUERY_PAGE)
        row = first_file(portal)
        url = f"{FILE_API}?Fphm={row['Fphm']}&Kprq={re.sub(r'[^0-9]', '', row['Kprq'])}&Wjgs=PDF"
        fetch = "async (url) => { const r = await fetch(url); return [r.status, await r.text()]; }"
        assert page.evaluate(fetch, url)[1].startswith('{"Code":0,"Y":false')
        assert page.evaluate(fetch, url)[1].startswith('{"Code":0,"Y":false')
        page.reload()
        status, text = page.evaluate(fetch, url)
        assert status == 200 and text.startswith("%PDF-")
    finally:
        portal.stop()


# ---- session loss ----

API_SIGNALS: dict[str, Callable[[httpx.Response], bool]] = {
    "redirect": lambda r: r.status_code == 302 and "/#/login?response_type=code" in r.headers["location"],
    "error_204": lambda r: r.json()["Response"]["Error"]["Code"] == "204",
    "error_302": lambda r: r.json()["Response"]["Error"]["Code"] == "302",
    "codemsg_refresh": lambda r: r.json()["Response"]["Data"] == {"CodeMsg": "refresh"},
    "codemsg_n": lambda r: r.json()["Response"]["Data"] == {"CodeMsg": "N"},
    "address_nonlogin": lambda r: "nonlogin" in r.json()["Response"]["Data"]["Address"],
}
FILE_SIGNALS: dict[str, Callable[[httpx.Response], bool]] = {
    "file_412": lambda r: r.status_code == 412 and "<script>" in r.text,
    "file_html": lambda r: r.status_code == 200 and "<html" in r.text and "个人用户密码" in r.text,
}


@pytest.mark.parametrize("target", ["query", "file"])
@pytest.mark.parametrize("signal", list(API_SIGNALS))
def test_session_loss_signal_then_the_session_stays_lost(
    start_portal: StartPortal, signal: str, target: str
) -> None:
    portal, client = start_portal({"kind": "session_loss", "signal": signal, "target": target, "count": 1})
    looks_right = API_SIGNALS[signal]
    first, next_call = call(client, target, portal), call(client, target, portal)
    assert looks_right(first) and looks_right(next_call)
    assert "会话已失效" not in first.text
    assert client.get(QUERY_PAGE).status_code == 302  # the page goes to the login
    assert portal.counters()["live_sessions"] == 0 and portal.counters()["faults"] == {"session_loss": 1}
    assert is_real_answer(call(portal.log_in(portal.client()), target, portal), target)  # a new login works


@pytest.mark.parametrize("signal", list(FILE_SIGNALS))
def test_session_loss_on_a_file_is_412_or_an_html_page(start_portal: StartPortal, signal: str) -> None:
    portal, client = start_portal({"kind": "session_loss", "signal": signal, "target": "file", "count": 1})
    row = first_file(portal)
    first, next_file = get_file(client, row), get_file(client, row)
    assert FILE_SIGNALS[signal](first) and FILE_SIGNALS[signal](next_file)
    assert not first.content.startswith(b"%PDF")
    assert API_SIGNALS["redirect"](client.post(QUERY_API, json=QUERY))  # the API calls are redirected
    assert portal.counters()["security"]["answers_412"] == (2 if signal == "file_412" else 0)


def test_session_loss_redirect_points_at_the_portal_entry(start_portal: StartPortal) -> None:
    portal, client = start_portal(
        {"kind": "session_loss", "signal": "redirect", "target": "query", "count": 1}, entry="sphandler"
    )
    location = client.post(QUERY_API, json=QUERY).headers["location"]
    assert location.startswith(f"{portal.url}/#/login?") and "Oauth2HandleServlet" in location


def test_session_loss_without_a_count_ends_every_new_session_too(start_portal: StartPortal) -> None:
    portal, client = start_portal({"kind": "session_loss", "signal": "error_204", "target": "file"})
    row = first_file(portal)
    assert API_SIGNALS["error_204"](get_file(client, row))
    assert API_SIGNALS["error_204"](get_file(portal.log_in(portal.client()), row))
    assert portal.counters()["faults"] == {"session_loss": 2}


def test_file_signals_need_a_file_target() -> None:
    with pytest.raises(ValidationError, match="answers file requests only"):
        FaultSpec(kind="session_loss", signal="file_412", target="query")
    with pytest.raises(ValidationError):
        FaultSpec(kind="session_loss", signal="dropped")  # type: ignore[arg-type]
    assert FaultSpec(kind="antibot_412", target="query").target == "query"
