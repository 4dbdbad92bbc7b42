"""One invoice built by hand, every field known, for tests of the mock's data and renderers (importable as `invoicekit`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from fixtures.data.model import Invoice, LineItem, Party


def hand_made_invoice(**overrides: Any) -> Invoice:
    seller = Party(
        name="北京星辰信息科技有限公司",
        tax_id="91110108MA01GUF37R",
        address_phone="北京市海淀区知春路27号 010-62345678",
        bank_account="招商银行北京海淀支行 110908123410201",
    )
    buyer = Party(
        name="上海云帆商贸有限公司",
        tax_id="91310115MA1K4ABC7T",
        address_phone="上海市浦东新区世纪大道8号 021-58881234",
        bank_account="中国银行上海浦东支行 437265012345",
    )
    line = LineItem(
        name="*信息技术服务*软件开发服务",
        unit="项",
        quantity=Decimal(1),
        unit_price=Decimal("5000.00"),
        amount=Decimal("5000.00"),
        rate=Decimal("0.13"),
        tax=Decimal("650.00"),
    )
    return Invoice(
        number="25112000000012345678",
        kind="81",
        status="01",
        source="2",
        direction="issued",
        seller=seller,
        buyer=buyer,
        issued_at=datetime(2025, 10, 8, 10, 17, 57),
        items=[line],
        amount=Decimal("5000.00"),
        tax=Decimal("650.00"),
        total=Decimal("5650.00"),
        clerk="张三",
        remark="合同编号：HT2025100042",
    ).model_copy(update=overrides)
