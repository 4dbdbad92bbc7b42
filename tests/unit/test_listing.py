"""The listing as typed rows (JSON and table), and the portal's error answers as the exceptions they mean."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import pytest

from agent.errors import (
    Maintenance,
    PortalChanged,
    PortalUnavailable,
    QueryRefused,
    RateLimited,
    SessionLost,
)
from agent.parsers.listing import html_title, parse_query_response, parse_table
from agent.records import Direction, InvoiceRow

DIGITAL_ROW = {
    "Fphm": "25112000000012345678", "ZzfpDm": "", "Zzfphm": "", "FplxDm": "82", "FpztDm": "01", "FplyDm": "2",
    "Xsfnsrsbh": "91110108MA01ABCD2X", "Xsfmc": "北京云杉数据科技有限公司",
    "Gmfnsrsbh": "91310115MA1K4XYZ7P", "Gmfmc": "上海青禾贸易有限公司",
    "Kprq": "2025-10-08 10:17:57", "Hjje": 5000.1, "Hjse": 650.01, "Jshj": 5650.11, "Kpr": "李雷",
}  # fmt: skip
LEGACY_ROW = {
    **DIGITAL_ROW, "Fphm": "01100025100011000007", "ZzfpDm": "011000251011", "Zzfphm": "00000007",
    "FplxDm": "10", "FplyDm": "1", "Hjje": -12.5, "Hjse": -1.63, "Jshj": -14.13, "Kpr": None,
}  # fmt: skip
EXPECTED_DIGITAL = InvoiceRow(
    direction=Direction.received, number="25112000000012345678", kind="82", status="01", source="2",
    seller_tax_id="91110108MA01ABCD2X", seller_name="北京云杉数据科技有限公司", buyer_tax_id="91310115MA1K4XYZ7P",
    buyer_name="上海青禾贸易有限公司", issued_at=datetime(2025, 10, 8, 10, 17, 57), amount=Decimal("5000.10"),
    tax=Decimal("650.01"), total=Decimal("5650.11"), clerk="李雷",
)  # fmt: skip


def envelope(data: object) -> str:
    return json.dumps({"Response": {"RequestId": "x", "Data": data}}, ensure_ascii=False)


def error_envelope(code: str, message: str) -> str:
    return json.dumps(
        {"Response": {"RequestId": "x", "Error": {"Code": code, "Message": message}}}, ensure_ascii=False
    )


def test_query_response_rows_are_typed_and_fen_exact() -> None:
    body = envelope({"PageNumber": 2, "PageSize": 20, "Total": 41, "List": [DIGITAL_ROW, LEGACY_ROW]})
    page = parse_query_response(body, Direction.received)
    assert (page.page_number, page.page_size, page.total) == (2, 20, 41)
    assert page.rows[0] == EXPECTED_DIGITAL
    legacy = page.rows[1]
    assert (legacy.legacy_code, legacy.legacy_number, legacy.display_number) == (
        "011000251011",
        "00000007",
        "00000007",
    )
    assert (legacy.amount, legacy.tax, legacy.total, legacy.clerk) == (
        Decimal("-12.50"),
        Decimal("-1.63"),
        Decimal("-14.13"),
        "",
    )


def test_float_amounts_keep_their_decimal_digits() -> None:
    """0.1 + 0.2 as floats is 0.30000000000000004; the parser never sees a float."""
    body = envelope(
        {"PageNumber": 1, "PageSize": 20, "Total": 1, "List": [{**DIGITAL_ROW, "Hjje": 0.3, "Jshj": 4059.51}]}
    )
    row = parse_query_response(body, Direction.issued).rows[0]
    assert (row.amount, row.total, row.direction) == (Decimal("0.30"), Decimal("4059.51"), Direction.issued)


def test_empty_listing_has_no_rows() -> None:
    page = parse_query_response(
        envelope({"PageNumber": 1, "PageSize": 20, "Total": 0, "List": None}), Direction.issued
    )
    assert (page.total, page.rows) == (0, [])


@pytest.mark.parametrize(
    ("code", "message", "error"),
    [
        ("AuthFailure.SessionExpired", "会话已失效，请重新登录", SessionLost),
        ("AuthFailure.KickedOut", "您的账号已在其他地方登录，被踢下线", SessionLost),
        ("FailedOperation", "系统维护中，请稍后访问", Maintenance),
        ("RequestLimitExceeded", "请求过于频繁，请稍后再试", RateLimited),
        ("InvalidParameter", "开票日期起止范围不能超过31天", QueryRefused),
        ("InvalidParameter", "请求参数错误：FplxDm", QueryRefused),
        ("InternalError", "服务内部错误", PortalUnavailable),
    ],
)
def test_query_error_envelope_raises_what_the_caller_must_do(
    code: str, message: str, error: type[Exception]
) -> None:
    with pytest.raises(error, match=message) as raised:
        parse_query_response(error_envelope(code, message), Direction.received)
    assert type(raised.value) is error


def test_query_answer_cut_short_is_transient() -> None:
    with pytest.raises(PortalUnavailable, match="not JSON"):
        parse_query_response(envelope({"PageNumber": 1})[:30], Direction.received)


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"code": 1000, "data": []}),
        envelope({"PageNumber": 1, "PageSize": 20, "List": []}),  # no Total
        envelope(
            {"PageNumber": 1, "PageSize": 20, "Total": 1, "List": [{**DIGITAL_ROW, "Kprq": "2025/10/08"}]}
        ),
        envelope({"PageNumber": 1, "PageSize": 20, "Total": 1, "List": [{**DIGITAL_ROW, "Jshj": "n/a"}]}),
    ],
)
def test_answer_in_an_unknown_shape_says_the_portal_changed(body: str) -> None:
    with pytest.raises(PortalChanged):
        parse_query_response(body, Direction.received)


TABLE_HEADERS = [
    "序号", "数电发票号码", "发票代码", "发票号码", "开票日期", "销方识别号", "销方名称", "购方识别号", "购买方名称",
    "金额", "税额", "价税合计", "发票票种", "发票状态", "发票来源", "开票人", "操作",
]  # fmt: skip
TABLE_ROW = [
    "1", "25112000000012345678", "", "", "2025-10-08 10:17:57", "91110108MA01ABCD2X", "北京云杉数据科技有限公司",
    "91310115MA1K4XYZ7P", "上海青禾贸易有限公司", "5,000.10", "¥650.01", "5650.11", "数电票（普通发票）", "正常",
    "电子发票服务平台", "李雷", "下载",
]  # fmt: skip


def test_table_rows_map_names_back_to_codes() -> None:
    rows = parse_table(TABLE_HEADERS, [TABLE_ROW, ["暂无数据"]], Direction.received)
    assert rows == [EXPECTED_DIGITAL]


def test_table_reads_codes_half_width_brackets_and_a_bare_day() -> None:
    cells = dict(zip(TABLE_HEADERS, TABLE_ROW, strict=True))
    cells.update(
        {"发票票种": "数电票(普通发票)", "发票状态": "03", "开票日期": "2025-10-08", "发票来源": "2"}
    )
    row = parse_table(TABLE_HEADERS, [list(cells.values())], Direction.received)[0]
    assert (row.kind, row.status, row.source, row.issued_at) == ("82", "03", "2", datetime(2025, 10, 8))


def test_table_with_an_unknown_kind_name_says_the_portal_changed() -> None:
    cells = [*TABLE_ROW[:12], "电子发票（新票种）", *TABLE_ROW[13:]]
    with pytest.raises(PortalChanged, match="新票种"):
        parse_table(TABLE_HEADERS, [cells], Direction.received)


def test_table_without_a_number_column_says_the_portal_changed() -> None:
    with pytest.raises(PortalChanged, match="number"):
        parse_table([h for h in TABLE_HEADERS if h != "数电发票号码"], [], Direction.received)


BUSY_PAGE = "<!DOCTYPE html><html><head><title>系统繁忙</title></head><body><h2>系统繁忙，请稍后再试</h2></body></html>"


# What an error body instead of a file means is agent.answers' to say: tests/unit/test_answers.py.


def test_html_title_only_for_html() -> None:
    assert html_title(BUSY_PAGE.encode()) == "系统繁忙"
    assert html_title(b"\xef\xbb\xbf  <html><body>no title</body></html>") == ""
    assert html_title(b"<?xml version='1.0'?><EInvoice/>") is None
