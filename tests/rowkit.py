"""A listing row for tests that need one invoice, with any field overridden (importable as `rowkit`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from agent.records import Direction, InvoiceRow

COMPANY = "91110108MA01ABCDEX"
NUMBER = "25112000000012345678"


def make_row(number: str = NUMBER, **overrides: Any) -> InvoiceRow:
    fields: dict[str, Any] = {
        "direction": Direction.received,
        "number": number,
        "kind": "82",
        "status": "01",
        "seller_tax_id": "91110000600012345X",
        "seller_name": "北京某某科技有限公司",
        "buyer_tax_id": COMPANY,
        "buyer_name": "上海买方贸易有限公司",
        "issued_at": datetime(2025, 10, 8, 10, 17, 57),
        "amount": Decimal("1165.57"),
        "tax": Decimal("68.93"),
        "total": Decimal("1234.50"),
    }
    return InvoiceRow(**(fields | overrides))
