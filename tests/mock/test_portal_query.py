"""全量发票查询 over HTTP: paging, order, filters, the date-range rules, and 导出全部."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from fixtures.pytest_plugin import MockPortal

QUERY_API = "/szzhzz/qlfpcx/v1/queryFpjcxx"
OCTOBER = {"Kprqq": "2025-10-01", "Kprqz": "2025-10-31"}

pytestmark = pytest.mark.mock_portal("plain", invoices_per_month=45)


@pytest.fixture
def client(mock_portal: MockPortal) -> httpx.Client:
    return mock_portal.log_in(mock_portal.client())


def answer(client: httpx.Client, path: str = QUERY_API, **body: Any) -> dict[str, Any]:
    full = {"Gjbq": "2", **OCTOBER, "FplxDm": [], "FpztDm": [], "PageNumber": 1, "PageSize": 20, **body}
    response: dict[str, Any] = client.post(path, json=full).json()["Response"]
    return response


def rows(client: httpx.Client, **body: Any) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = answer(client, PageSize=100, **body)["Data"]["List"]
    return listed


def all_pages(client: httpx.Client, size: int) -> list[str]:
    numbers: list[str] = []
    for page in range(1, 100):
        data = answer(client, PageNumber=page, PageSize=size)["Data"]
        numbers += [row["Fphm"] for row in data["List"]]
        if page * size >= data["Total"]:
            return numbers
    raise AssertionError("paging never ended")


@pytest.mark.parametrize("size", [10, 20, 50, 100])
def test_every_page_size_lists_every_row_exactly_once(
    mock_portal: MockPortal, client: httpx.Client, size: int
) -> None:
    truth = mock_portal.truth("2025-10", "received")
    numbers = all_pages(client, size)
    assert len(numbers) == len(set(numbers)) == truth["total"]
    assert set(numbers) == {row["Fphm"] for row in truth["invoices"]}


def test_answer_envelope_echoes_paging(client: httpx.Client) -> None:
    data = answer(client, PageNumber=2, PageSize=10)["Data"]
    assert (data["PageNumber"], data["PageSize"], len(data["List"])) == (2, 10, 10)
    assert set(data["List"][0]) == {
        "Fphm", "ZzfpDm", "Zzfphm", "FplxDm", "FpztDm", "FplyDm", "Xsfnsrsbh", "Xsfmc", "Gmfnsrsbh", "Gmfmc",
        "Kprq", "Hjje", "Hjse", "Jshj", "Kpr",
    }  # fmt: skip


def test_rows_are_newest_first_then_by_number(client: httpx.Client) -> None:
    listed = [(row["Kprq"], row["Fphm"]) for row in rows(client)]
    by_number = sorted(listed, key=lambda pair: pair[1])
    assert listed == sorted(by_number, key=lambda pair: pair[0], reverse=True)


def test_issued_lists_the_company_as_seller(mock_portal: MockPortal, client: httpx.Client) -> None:
    company = mock_portal.accounts()["companies"][0]["tax_id"]
    assert {row["Xsfnsrsbh"] for row in rows(client, Gjbq="1")} == {company}
    assert {row["Gmfnsrsbh"] for row in rows(client, Gjbq="2")} == {company}


def test_status_filter(client: httpx.Client) -> None:
    everything = rows(client)
    normal = rows(client, FpztDm=["01"])
    assert {row["FpztDm"] for row in normal} == {"01"}
    assert len(normal) == sum(row["FpztDm"] == "01" for row in everything) < len(everything)


def test_kind_filter_takes_several_codes(client: httpx.Client) -> None:
    everything = rows(client)
    digital = rows(client, FplxDm=["81", "82"])
    assert {row["FplxDm"] for row in digital} <= {"81", "82"}
    assert len(digital) == sum(row["FplxDm"] in ("81", "82") for row in everything) > 0


def test_number_filter_finds_one_invoice(client: httpx.Client) -> None:
    target = rows(client)[7]["Fphm"]
    assert [row["Fphm"] for row in rows(client, Fphm=target)] == [target]


def test_counterpart_id_and_name_filter_by_substring(client: httpx.Client) -> None:
    seller = rows(client)[3]
    by_id = rows(client, Dfnsrsbh=seller["Xsfnsrsbh"][4:12])
    by_name = rows(client, Dfnsrmc=seller["Xsfmc"][:4])
    assert seller in by_id and {row["Xsfnsrsbh"] for row in by_id} == {seller["Xsfnsrsbh"]}
    assert seller in by_name and all(seller["Xsfmc"][:4] in row["Xsfmc"] for row in by_name)


def test_date_range_keeps_only_those_days(client: httpx.Client) -> None:
    some_days = rows(client, Kprqq="2025-10-05", Kprqz="2025-10-09")
    assert some_days and all("2025-10-05" <= row["Kprq"][:10] <= "2025-10-09" for row in some_days)


def test_range_across_two_months_is_newest_first(client: httpx.Client) -> None:
    listed = rows(client, Kprqq="2025-10-20", Kprqz="2025-11-10")
    dates = [row["Kprq"] for row in listed]
    assert dates == sorted(dates, reverse=True) and dates[0][:7] == "2025-11" and dates[-1][:7] == "2025-10"


def test_no_match_is_an_empty_list(client: httpx.Client) -> None:
    data = answer(client, Fphm="99999999999999999999")["Data"]
    assert (data["Total"], data["List"]) == (0, [])


def test_page_past_the_end_is_empty_with_the_total(client: httpx.Client) -> None:
    data = answer(client, PageNumber=99)["Data"]
    assert (data["Total"], data["List"]) == (45, [])


@pytest.mark.mock_portal("plain", invoices_per_month=0)
def test_empty_month_has_no_rows(client: httpx.Client) -> None:
    assert answer(client)["Data"]["Total"] == 0


def test_range_longer_than_the_limit_is_refused(client: httpx.Client) -> None:
    error = answer(client, Kprqq="2025-10-01", Kprqz="2025-11-01")["Error"]
    assert error == {"Code": "InvalidParameter", "Message": "开票日期起止范围不能超过31天"}


@pytest.mark.mock_portal("plain", max_range_days=7)
def test_range_limit_comes_from_the_scenario(client: httpx.Client) -> None:
    assert (
        answer(client, Kprqq="2025-10-01", Kprqz="2025-10-08")["Error"]["Message"]
        == "开票日期起止范围不能超过7天"
    )
    assert "Data" in answer(client, Kprqq="2025-10-01", Kprqz="2025-10-07")


def test_start_after_end_is_refused(client: httpx.Client) -> None:
    assert (
        answer(client, Kprqq="2025-10-10", Kprqz="2025-10-09")["Error"]["Message"]
        == "开票日期起不能晚于开票日期止"
    )


def test_malformed_body_names_the_field(client: httpx.Client) -> None:
    assert answer(client, Kprqq="10/01/2025")["Error"]["Message"] == "请求参数错误：Kprqq"


def test_query_calls_are_counted(mock_portal: MockPortal, client: httpx.Client) -> None:
    answer(client)
    answer(client, PageNumber=2)
    assert mock_portal.counters()["query_calls"] == 2


# ---- 导出全部 ----


def test_check_count_answers_the_row_count(client: httpx.Client) -> None:
    assert answer(client, "/szzhzz/qlfpcx/v1/checkFpCount", FpztDm=["01"])["Data"]["Count"] == len(
        rows(client, FpztDm=["01"])
    )


def test_export_is_an_xlsx_attachment_of_the_selection(client: httpx.Client) -> None:
    body = {"Gjbq": "2", **OCTOBER, "FplxDm": [], "FpztDm": []}
    response = client.post("/szzhzz/qlfpcx/v1/exportFpxx", json=body)
    workbook = load_workbook(io.BytesIO(response.content), read_only=True)
    assert (
        response.headers["content-type"]
        == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert response.headers["content-disposition"].startswith("attachment; filename*=UTF-8''")
    assert workbook.sheetnames[0] == "发票基础信息"


def test_export_of_nothing_is_refused(client: httpx.Client) -> None:
    error = answer(client, "/szzhzz/qlfpcx/v1/checkFpCount", Fphm="99999999999999999999")["Error"]
    assert error["Message"] == "导出数据量不能为空或不能为零"


@pytest.mark.mock_portal("plain", invoices_per_month=45, export_limit=10)
def test_export_over_the_limit_is_refused(client: httpx.Client) -> None:
    for path in ("/szzhzz/qlfpcx/v1/checkFpCount", "/szzhzz/qlfpcx/v1/exportFpxx"):
        assert answer(client, path)["Error"]["Message"] == "请限制开票日期"
