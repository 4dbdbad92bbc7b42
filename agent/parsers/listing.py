"""The portal's answers about invoices, as typed records: the queryFpjcxx JSON, the listing table (the HTML
fallback), and the error bodies a download may get instead of a file.

The dppt APIs speak a Tencent-cloud envelope: `{"Response": {"Data": ...}}` or `{"Response": {"Error": {"Code",
"Message"}}}`. Errors are mapped by the portal's message (patterns in agent.portal.Messages), then by the code's
family, to what the caller must do next: log in again, wait, fix the query, or retry later.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from agent.errors import (
    FapiaoError,
    Maintenance,
    PortalChanged,
    PortalUnavailable,
    QueryRefused,
    RateLimited,
    SessionLost,
)
from agent.parsers.amounts import parse_amount, to_fen
from agent.portal import KIND_NAMES, ROW_FIELDS, SOURCE_NAMES, STATUS_NAMES, TABLE_HEADERS, Messages
from agent.records import Direction, InvoiceRow

MESSAGES = Messages()
LISTING_TIME = "%Y-%m-%d %H:%M:%S"
MONEY_FIELDS = ("amount", "tax", "total")
# Tencent-cloud error code families meaning "this request is wrong", not "try again later".
REFUSED_CODE_PREFIXES = ("InvalidParameter", "MissingParameter", "UnsupportedOperation")
_HTML_START = re.compile(rb"^\s*(?:\xef\xbb\xbf)?\s*<(?:!doctype\s+html|html|head|body)", re.IGNORECASE)


class QueryPage(BaseModel):
    """One page of the 全量发票查询 listing, as queryFpjcxx answers it."""

    model_config = ConfigDict(frozen=True)

    page_number: int
    page_size: int
    total: int  # rows matching the query on all pages: the count the run must end up with
    rows: list[InvoiceRow]


def parse_query_response(body: str, direction: Direction) -> QueryPage:
    """The JSON text of a queryFpjcxx answer -> its rows; an error envelope raises the matching FapiaoError."""
    try:
        envelope = json.loads(body, parse_float=Decimal)  # floats would lose fen: 0.1 + 0.2
    except ValueError as exc:
        raise PortalUnavailable(f"the query answer is not JSON (cut short?): {body[:80]!r}") from exc
    response = envelope.get("Response") if isinstance(envelope, dict) else None
    if not isinstance(response, dict):
        raise PortalChanged(f"the query answer has no Response object: {body[:80]!r}")
    if "Error" in response:
        raise query_error(response["Error"])
    try:
        data = response["Data"]
        rows = [_json_row(item, direction) for item in data["List"] or []]
        return QueryPage(
            page_number=data["PageNumber"], page_size=data["PageSize"], total=data["Total"], rows=rows
        )
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise PortalChanged(f"the query answer has an unexpected shape: {exc}") from exc


def query_error(error: Mapping[str, Any]) -> FapiaoError:
    """An `Error` object of the query API -> the exception saying what the caller must do next."""
    code, message = str(error.get("Code", "")), str(error.get("Message", ""))
    known = _known_error(message)
    if known:
        return known
    if _says(message, MESSAGES.range_too_long) or code.startswith(REFUSED_CODE_PREFIXES):
        return QueryRefused(f"the portal refused the query: {message} ({code})")
    return PortalUnavailable(f"the portal answered {code}: {message}")


def _known_error(message: str) -> FapiaoError | None:
    """Messages that mean the same on every API: the session is gone, the portal is down or throttling."""
    if _says(message, MESSAGES.session_expired + MESSAGES.kicked_out):
        return SessionLost(message)
    if _says(message, MESSAGES.maintenance):
        return Maintenance(message)
    if _says(message, MESSAGES.sms_throttled):  # "频繁": the throttle word on every API, not only SMS
        return RateLimited(message)
    return None


def _says(message: str, patterns: tuple[str, ...]) -> bool:
    return any(pattern in message for pattern in patterns)


def _json_row(item: Mapping[str, Any], direction: Direction) -> InvoiceRow:
    # A null (e.g. ZzfpDm of a fully digital invoice) means "not set": the record's default applies.
    fields = {field: item[key] for key, field in ROW_FIELDS.items() if item.get(key) is not None}
    if "issued_at" in fields:
        fields["issued_at"] = datetime.strptime(fields["issued_at"], LISTING_TIME)
    for field in MONEY_FIELDS:
        if field in fields:
            fields[field] = to_fen(fields[field])
    return InvoiceRow(direction=direction, **fields)


def parse_table(headers: list[str], rows: list[list[str]], direction: Direction) -> list[InvoiceRow]:
    """The listing table's cell texts -> rows. Columns are found by header text; others (序号, 操作) are ignored,
    and rows without a cell for every header (the 暂无数据 placeholder) are skipped."""
    columns = {
        index: TABLE_HEADERS[text.strip()]
        for index, text in enumerate(headers)
        if text.strip() in TABLE_HEADERS
    }
    missing = {"number", "issued_at", "total"} - set(columns.values())
    if missing:
        raise PortalChanged(f"the listing table has no column for {', '.join(sorted(missing))}: {headers}")
    try:
        return [_table_row(columns, cells, direction) for cells in rows if len(cells) == len(headers)]
    except (ValueError, ValidationError) as exc:
        raise PortalChanged(f"the listing table has a cell this agent cannot read: {exc}") from exc


def _table_row(columns: dict[int, str], cells: list[str], direction: Direction) -> InvoiceRow:
    shown = {field: cells[index].strip() for index, field in columns.items()}
    fields: dict[str, object] = {
        **shown,
        "kind": _code(shown.get("kind", ""), KIND_NAMES),
        "status": _code(shown.get("status", ""), STATUS_NAMES),
        "source": _code(shown.get("source", ""), SOURCE_NAMES),
        "issued_at": _table_time(shown["issued_at"]),
        **{field: _table_money(shown.get(field, ""), field) for field in MONEY_FIELDS},
    }
    return InvoiceRow.model_validate({"direction": direction, **fields})


def _code(shown: str, names: dict[str, str]) -> str:
    """A code shown by name (数电票（普通发票）) -> the code (82); a code shown as such stays."""
    if shown in names or not shown:
        return shown
    by_name = {_same_brackets(name): code for code, name in names.items()}
    try:
        return by_name[_same_brackets(shown)]
    except KeyError:
        raise ValueError(f"unknown name {shown!r}, expected one of {sorted(names.values())}") from None


def _same_brackets(text: str) -> str:
    return text.replace("（", "(").replace("）", ")")


def _table_time(text: str) -> datetime:
    """The table shows 开票日期 with its time, or on some versions the day alone."""
    try:
        return datetime.strptime(text, LISTING_TIME)
    except ValueError:
        return datetime.strptime(text, "%Y-%m-%d")


def _table_money(text: str, field: str) -> Decimal:
    value = parse_amount(text)
    if value is None:
        raise ValueError(f"{field} {text!r} is not an amount")
    return value


def html_title(body: bytes) -> str | None:
    """The <title> of an HTML page ("" when it has none), or None when the body is not HTML."""
    if not _HTML_START.match(body[:1024]):
        return None
    match = re.search(
        r"<title[^>]*>(.*?)</title>", body[:4096].decode("utf-8", "replace"), re.IGNORECASE | re.DOTALL
    )
    return html.unescape(match.group(1)).strip() if match else ""


def html_text(body: bytes) -> str:
    """The visible text of an HTML page (scripts and styles left out), on one line."""
    text = re.sub(
        r"<(script|style)\b.*?</\1>|<[^>]+>",
        " ",
        body.decode("utf-8", "replace"),
        flags=re.DOTALL | re.IGNORECASE,
    )
    return " ".join(html.unescape(text).split())
