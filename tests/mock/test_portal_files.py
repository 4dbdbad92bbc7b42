"""One invoice's file over HTTP: exportDzfpwj with its refusals, and the public QR link exportDzfpwjEwm."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from fixtures.pytest_plugin import MockPortal

FILE_API = "/kpfw/fpjfzz/v1/exportDzfpwj"
QR_API = "/kpfw/fpjfzz/v1/exportDzfpwjEwm"

# an HTTP client: realistic mode refuses it (test_portal_realistic)
pytestmark = pytest.mark.mock_portal("plain")


@pytest.fixture
def client(mock_portal: MockPortal) -> httpx.Client:
    return mock_portal.log_in(mock_portal.client())


@pytest.fixture
def received(mock_portal: MockPortal) -> list[dict[str, Any]]:
    invoices: list[dict[str, Any]] = mock_portal.truth("2025-10", "received")["invoices"]
    return invoices


def with_file(invoices: list[dict[str, Any]]) -> dict[str, Any]:
    return next(row for row in invoices if row["has_file"])


def kprq(row: dict[str, Any]) -> str:
    return "".join(char for char in row["Kprq"] if char.isdigit())


def fetch(client: httpx.Client, row: dict[str, Any], fmt: str = "PDF", **params: str) -> httpx.Response:
    return client.get(FILE_API, params={"Fphm": row["Fphm"], "Kprq": kprq(row), "Wjgs": fmt, **params})


def error_message(response: httpx.Response) -> str:
    message: str = response.json()["Response"]["Error"]["Message"]
    return message


@pytest.mark.parametrize(
    ("fmt", "media_type", "magic"),
    [
        ("PDF", "application/pdf", b"%PDF-"),
        ("OFD", "application/ofd", b"PK"),
        ("XML", "application/xml", b"<?xml"),
    ],
)
def test_file_is_the_invoice_s_own_bytes(
    client: httpx.Client, received: list[dict[str, Any]], fmt: str, media_type: str, magic: bytes
) -> None:
    row = with_file(received)
    response = fetch(client, row, fmt)
    assert response.headers["content-type"] == media_type
    assert response.content.startswith(magic)
    assert hashlib.sha256(response.content).hexdigest() == row["sha256"][fmt]


def test_file_name_names_number_seller_and_date(client: httpx.Client, received: list[dict[str, Any]]) -> None:
    row = with_file(received)
    name = f"dzfp_{row['Fphm']}_{row['Xsfmc']}_{kprq(row)}.ofd"
    disposition = fetch(client, row, "OFD").headers["content-disposition"]
    assert disposition == f"attachment; filename*=UTF-8''{quote(name, safe='')}"


def test_downloads_are_counted_per_invoice_and_format(
    mock_portal: MockPortal, client: httpx.Client, received: list[dict[str, Any]]
) -> None:
    row = with_file(received)
    fetch(client, row, "PDF")
    fetch(client, row, "PDF")
    fetch(client, row, "XML")
    counters = mock_portal.counters()
    assert counters["downloads"][row["Fphm"]] == {"PDF": 2, "XML": 1}
    assert counters["file_requests"][row["Fphm"]] == {"PDF": 2, "XML": 1}


def test_file_without_session_is_401(mock_portal: MockPortal, received: list[dict[str, Any]]) -> None:
    response = fetch(mock_portal.client(), with_file(received))
    assert response.status_code == 401
    assert response.json()["Response"]["Error"] == {
        "Code": "AuthFailure.SessionExpired", "Message": "会话已失效，请重新登录"
    }  # fmt: skip


def test_paper_invoice_has_no_file(client: httpx.Client, received: list[dict[str, Any]]) -> None:
    paper = next(row for row in received if not row["has_file"])
    response = fetch(client, paper)
    assert paper["FplxDm"] in ("01", "04") and paper["sha256"] is None
    assert (response.status_code, error_message(response)) == (200, "纸质发票无电子文件")


def test_kprq_must_match_the_invoice(client: httpx.Client, received: list[dict[str, Any]]) -> None:
    response = fetch(client, with_file(received), Kprq="20251001000000")
    assert error_message(response) == "开票日期与发票信息不一致"


def test_unknown_invoice_is_not_found(client: httpx.Client, received: list[dict[str, Any]]) -> None:
    response = fetch(client, with_file(received), Fphm="25110000000000000000")
    assert error_message(response) == "未查询到发票信息"


def test_unknown_format_is_refused(client: httpx.Client, received: list[dict[str, Any]]) -> None:
    assert error_message(fetch(client, with_file(received), "ZIP")) == "文件格式错误，仅支持PDF、OFD、XML"


def test_another_company_s_invoice_is_refused(mock_portal: MockPortal, client: httpx.Client) -> None:
    companies = [company["tax_id"] for company in mock_portal.accounts()["companies"]]
    foreign = mock_portal.truth("2025-10", "received", company=companies[2])["invoices"]
    row = next(
        row for row in foreign if row["has_file"] and companies[0] not in (row["Xsfnsrsbh"], row["Gmfnsrsbh"])
    )
    assert error_message(fetch(client, row)) == "您无权下载该发票"


def test_qr_link_needs_no_session_but_the_check_code(
    mock_portal: MockPortal, received: list[dict[str, Any]]
) -> None:
    row = with_file(received)
    public = mock_portal.client()
    params = {"Wjgs": "PDF", "Fphm": row["Fphm"], "Kprq": kprq(row)}
    good = public.get(QR_API, params={**params, "Jym": row["check_hex"]})
    bad = public.get(QR_API, params={**params, "Jym": "0000" if row["check_hex"] != "0000" else "FFFF"})
    assert hashlib.sha256(good.content).hexdigest() == row["sha256"]["PDF"]
    assert error_message(bad) == "校验码错误"
