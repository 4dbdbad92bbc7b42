"""Each fault kind, observable as the scenario describes it, limited as asked, counted, and reproducible."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from fixtures.portal.faults import FaultSpec
from fixtures.portal.scenario import PortalSettings, Scenario
from fixtures.pytest_plugin import MockPortal, start_mock_portal

FILE_API = "/kpfw/fpjfzz/v1/exportDzfpwj"
QUERY_API = "/szzhzz/qlfpcx/v1/queryFpjcxx"
QUERY = {"Gjbq": "2", "Kprqq": "2025-10-01", "Kprqz": "2025-10-31", "PageNumber": 1, "PageSize": 10}
NOT_READY = "文件生成中，请稍后再试"

StartPortal = Callable[..., MockPortal]


@pytest.fixture
def start_portal() -> Iterator[StartPortal]:
    """Starts portals whose faults are given as dicts; stops them after the test."""
    started: list[MockPortal] = []

    def start(*faults: dict[str, Any], seed: int = 2025) -> MockPortal:
        scenario = Scenario(
            name="test",
            faults=[FaultSpec(**fault) for fault in faults],
            portal=PortalSettings(invoices_per_month=30, realistic=False),  # the server's logic, over HTTP
        )
        started.append(start_mock_portal(scenario, seed))
        return started[-1]

    yield start
    for portal in started:
        portal.stop()


def files_of(portal: MockPortal) -> list[dict[str, Any]]:
    return [row for row in portal.truth("2025-10", "received")["invoices"] if row["has_file"]]


def fetch(client: httpx.Client, row: dict[str, Any], fmt: str = "PDF") -> httpx.Response:
    kprq = "".join(char for char in row["Kprq"] if char.isdigit())
    return client.get(FILE_API, params={"Fphm": row["Fphm"], "Kprq": kprq, "Wjgs": fmt})


def sha(response: httpx.Response) -> str:
    return hashlib.sha256(response.content).hexdigest()


def message(response: httpx.Response) -> str:
    text: str = response.json()["Response"]["Error"]["Message"]
    return text


def portal_and_client(start_portal: StartPortal, *faults: dict[str, Any]) -> tuple[MockPortal, httpx.Client]:
    portal = start_portal(*faults)
    return portal, portal.log_in(portal.client())


def test_not_ready_answers_the_first_requests_per_invoice(start_portal: StartPortal) -> None:
    portal, client = portal_and_client(start_portal, {"kind": "not_ready", "first_requests": 2})
    first, second = files_of(portal)[:2]
    answers = [fetch(client, first) for _ in range(3)]
    assert [message(answer) for answer in answers[:2]] == [NOT_READY, NOT_READY]
    assert sha(answers[2]) == first["sha256"]["PDF"]
    assert message(fetch(client, second)) == NOT_READY
    counters = portal.counters()
    assert counters["faults"] == {"not_ready": 3}
    assert counters["faults_by_invoice"][first["Fphm"]] == {"not_ready": 2}
    assert counters["downloads"] == {first["Fphm"]: {"PDF": 1}}


def test_not_ready_window_ends_after_its_seconds(start_portal: StartPortal) -> None:
    portal, client = portal_and_client(start_portal, {"kind": "not_ready", "window": [0, 60]})
    row = files_of(portal)[0]
    before = fetch(client, row)
    portal.advance_clock(61)
    assert message(before) == NOT_READY
    assert sha(fetch(client, row)) == row["sha256"]["PDF"]


def test_fault_limited_to_listed_invoices(start_portal: StartPortal) -> None:
    portal = start_portal()
    first, second = files_of(portal)[:2]
    portal.stop()
    portal, client = portal_and_client(start_portal, {"kind": "not_ready", "invoices": [second["Fphm"]]})
    assert fetch(client, first).headers["content-type"] == "application/pdf"
    assert message(fetch(client, second)) == NOT_READY


def test_server_error_has_the_status_and_respects_count(start_portal: StartPortal) -> None:
    portal, client = portal_and_client(start_portal, {"kind": "server_error", "status": 502, "count": 1})
    row = files_of(portal)[0]
    statuses = [fetch(client, row).status_code for _ in range(3)]
    assert statuses == [502, 200, 200]


def test_rate_limit_is_429_with_retry_after(start_portal: StartPortal) -> None:
    portal, client = portal_and_client(start_portal, {"kind": "rate_limit", "retry_after": 7, "count": 1})
    limited = fetch(client, files_of(portal)[0])
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "7")
    assert message(limited) == "请求过于频繁，请稍后再试"


def test_slow_answer_still_brings_the_right_file(start_portal: StartPortal) -> None:
    portal, client = portal_and_client(start_portal, {"kind": "slow", "delay": 0.2, "count": 1})
    row = files_of(portal)[0]
    assert sha(fetch(client, row)) == row["sha256"]["PDF"]
    assert portal.counters()["faults"] == {"slow": 1}


def test_drop_connection_cuts_the_transfer(start_portal: StartPortal) -> None:
    portal, client = portal_and_client(start_portal, {"kind": "drop_connection", "fraction": 0.3, "count": 1})
    row = files_of(portal)[0]
    with pytest.raises(httpx.RemoteProtocolError):
        fetch(client, row)
    assert sha(fetch(client, row)) == row["sha256"]["PDF"]


def test_truncated_pdf_is_a_complete_answer_with_half_a_file(start_portal: StartPortal) -> None:
    portal, client = portal_and_client(start_portal, {"kind": "truncated_pdf", "fraction": 0.5, "count": 1})
    row = files_of(portal)[0]
    cut, whole = fetch(client, row), fetch(client, row)
    assert cut.status_code == 200 and cut.headers["content-type"] == "application/pdf"
    assert cut.content == whole.content[: len(whole.content) // 2]


def test_wrong_bytes_is_another_invoice_s_valid_pdf(start_portal: StartPortal) -> None:
    portal, client = portal_and_client(start_portal, {"kind": "wrong_bytes", "count": 1})
    rows = files_of(portal)
    wrong = sha(fetch(client, rows[0]))
    assert wrong != rows[0]["sha256"]["PDF"]
    assert wrong in {row["sha256"]["PDF"] for row in rows[1:]}


def test_html_as_pdf_is_a_busy_page_labelled_pdf(start_portal: StartPortal) -> None:
    portal, client = portal_and_client(start_portal, {"kind": "html_as_pdf", "count": 1})
    answer = fetch(client, files_of(portal)[0])
    assert (answer.status_code, answer.headers["content-type"]) == (200, "application/pdf")
    assert answer.content.startswith(b"<!DOCTYPE html>") and "系统繁忙" in answer.text


def test_format_swap_answers_ofd_and_xml_with_the_pdf(start_portal: StartPortal) -> None:
    portal, client = portal_and_client(start_portal, {"kind": "format_swap"})
    row = files_of(portal)[0]
    assert sha(fetch(client, row, "OFD")) == row["sha256"]["PDF"]
    assert sha(fetch(client, row, "XML")) == row["sha256"]["PDF"]
    assert sha(fetch(client, row, "PDF")) == row["sha256"]["PDF"]
    assert portal.counters()["faults"] == {"format_swap": 2}


def test_maintenance_window_closes_pages_and_apis_but_not_the_control_surface(
    start_portal: StartPortal,
) -> None:
    portal = start_portal({"kind": "maintenance", "window": [0, 30]})
    client = portal.client()
    page, api = client.get("/"), client.post(QUERY_API, json=QUERY)
    counters = portal.counters()
    portal.advance_clock(31)
    assert (page.status_code, api.status_code) == (503, 503)
    assert "系统维护中，请稍后访问" in page.text and "系统维护中，请稍后访问" in api.text
    assert counters["faults"] == {"maintenance": 2}
    assert client.get("/").status_code == 200


def test_maintenance_for_the_first_requests(start_portal: StartPortal) -> None:
    client = start_portal({"kind": "maintenance", "first_requests": 2}).client()
    assert [client.get("/").status_code for _ in range(3)] == [503, 503, 200]


def test_session_expiry_kills_a_session_after_its_seconds(start_portal: StartPortal) -> None:
    portal, client = portal_and_client(start_portal, {"kind": "session_expiry", "seconds": 120})
    alive = client.post(QUERY_API, json=QUERY).json()["Response"]
    portal.advance_clock(121)
    assert "Data" in alive
    assert message(client.post(QUERY_API, json=QUERY)) == "会话已失效，请重新登录"
    assert portal.counters()["faults"] == {"session_expiry": 1}


def test_kick_out_after_downloads(start_portal: StartPortal) -> None:
    portal, client = portal_and_client(start_portal, {"kind": "kick_out", "after_downloads": 2})
    rows = files_of(portal)
    statuses = [fetch(client, row).status_code for row in rows[:3]]
    kicked = fetch(client, rows[0])
    assert statuses == [200, 200, 401]
    assert message(kicked) == "您的账号已在其他地方登录，被踢下线"


def test_shifting_rows_adds_an_invoice_after_the_first_page(start_portal: StartPortal) -> None:
    portal, client = portal_and_client(start_portal, {"kind": "shifting_rows", "count": 1})
    totals = [
        client.post(QUERY_API, json={**QUERY, "PageNumber": page}).json()["Response"]["Data"]["Total"]
        for page in (1, 2, 1, 2)
    ]
    assert totals == [30, 31, 31, 31]
    assert portal.truth("2025-10", "received")["total"] == 31


def test_query_api_server_error_and_rate_limit(start_portal: StartPortal) -> None:
    portal, client = portal_and_client(
        start_portal,
        {"kind": "server_error", "target": "query", "status": 503, "count": 1},
        {"kind": "rate_limit", "target": "query", "count": 1},
    )
    statuses = [client.post(QUERY_API, json=QUERY).status_code for _ in range(3)]
    assert statuses == [503, 429, 200]
    assert portal.counters()["faults"] == {"server_error": 1, "rate_limit": 1}


def _listed(client: httpx.Client) -> list[dict[str, Any]]:
    """The month as the query API lists it: no files rendered, unlike the truth endpoint."""
    rows: list[dict[str, Any]] = client.post(QUERY_API, json={**QUERY, "PageSize": 100}).json()["Response"][
        "Data"
    ]["List"]
    return rows


def _refused_invoices(portal: MockPortal) -> set[str]:
    client = portal.log_in(portal.client())
    paperless = [row for row in _listed(client) if row["FplxDm"] not in ("01", "04")]
    return {row["Fphm"] for row in paperless if fetch(client, row).status_code != 200}


def test_share_picks_the_same_invoices_for_the_same_seed(start_portal: StartPortal) -> None:
    fault = {"kind": "server_error", "share": 0.4}
    first, again = _refused_invoices(start_portal(fault)), _refused_invoices(start_portal(fault))
    other_seed = _refused_invoices(start_portal(fault, seed=99))
    assert first == again
    assert 0 < len(first) < 30 and first != other_seed


def _statuses(portal: MockPortal) -> list[int]:
    client = portal.log_in(portal.client())
    row = next(row for row in _listed(client) if row["FplxDm"] not in ("01", "04"))
    return [fetch(client, row).status_code for _ in range(24)]


def test_rate_draws_are_reproducible_with_the_seed(start_portal: StartPortal) -> None:
    fault = {"kind": "server_error", "rate": 0.5}
    first, again, other_seed = (
        _statuses(start_portal(fault)),
        _statuses(start_portal(fault)),
        _statuses(start_portal(fault, seed=7)),
    )
    assert first == again and first != other_seed
    assert {200, 503} == set(first)


def test_scenario_from_a_toml_file(tmp_path: Path, mock_portal_factory: Callable[..., MockPortal]) -> None:
    path = tmp_path / "cut.toml"
    path.write_text(
        'name = "cut"\n[portal]\ninvoices_per_month = 30\nrealistic = false\n[[faults]]\nkind = "rate_limit"\ncount = 1\n'
    )
    portal = mock_portal_factory(path)
    client = portal.log_in(portal.client())
    assert fetch(client, files_of(portal)[0]).status_code == 429
    assert portal.scenario()["name"] == "cut"


def test_query_target_is_only_for_transport_faults() -> None:
    with pytest.raises(ValidationError, match="cannot target the query API"):
        FaultSpec(kind="truncated_pdf", target="query")
