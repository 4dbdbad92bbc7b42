"""The mock's invoice universe: deterministic, unique, arithmetically exact, with real-looking codes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from invoicekit import hand_made_invoice

from agent.parsers.amounts import to_fen
from agent.parsers.ids import is_valid_uscc
from fixtures.data.catalog import REGION_BY_CODE
from fixtures.data.generator import Universe
from fixtures.data.model import Invoice

MONTH = "2025-10"


@pytest.fixture(scope="module")
def universe() -> Universe:
    return Universe(seed=7, companies=2, invoices_per_month=120)


@pytest.fixture(scope="module")
def received(universe: Universe) -> list[Invoice]:
    return universe.month(universe.companies[0].tax_id, MONTH, "received")


@pytest.fixture(scope="module")
def issued(universe: Universe) -> list[Invoice]:
    return universe.month(universe.companies[0].tax_id, MONTH, "issued")


def test_same_seed_gives_identical_months() -> None:
    first, second = Universe(seed=11, invoices_per_month=30), Universe(seed=11, invoices_per_month=30)
    company = first.companies[0].tax_id
    assert first.companies == second.companies
    assert first.month(company, MONTH, "issued") == second.month(company, MONTH, "issued")


def test_months_do_not_depend_on_the_order_they_are_asked_in() -> None:
    forward, backward = Universe(seed=11, invoices_per_month=20), Universe(seed=11, invoices_per_month=20)
    company = forward.companies[1].tax_id
    forward.month(company, "2025-09", "received")
    assert forward.month(company, MONTH, "received") == backward.month(company, MONTH, "received")


def test_different_seeds_give_different_worlds() -> None:
    first, second = Universe(seed=1, invoices_per_month=10), Universe(seed=2, invoices_per_month=10)
    assert first.companies[0].tax_id != second.companies[0].tax_id


def test_every_credit_code_is_valid(universe: Universe, received: list[Invoice]) -> None:
    codes = {party.tax_id for invoice in received for party in (invoice.seller, invoice.buyer)}
    codes |= {party.tax_id for party in universe.companies}
    assert all(is_valid_uscc(code) for code in codes), sorted(
        code for code in codes if not is_valid_uscc(code)
    )


def test_month_has_the_configured_count_sorted_by_time_inside_the_month(received: list[Invoice]) -> None:
    assert len(received) == 120
    assert [invoice.issued_at for invoice in received] == sorted(invoice.issued_at for invoice in received)
    assert {f"{invoice.issued_at:%Y-%m}" for invoice in received} == {MONTH}


def test_amount_plus_tax_is_total_and_lines_add_up(issued: list[Invoice], received: list[Invoice]) -> None:
    for invoice in issued + received:
        assert invoice.amount + invoice.tax == invoice.total, invoice.number
        assert sum(line.amount for line in invoice.items) == invoice.amount, invoice.number
        assert sum(line.tax for line in invoice.items) == invoice.tax, invoice.number
        assert all(line.tax == to_fen(line.amount * line.rate) for line in invoice.items), invoice.number


def test_rates_are_real_vat_rates(received: list[Invoice]) -> None:
    rates = {line.rate for invoice in received for line in invoice.items}
    assert rates <= {Decimal(rate) for rate in ("0.13", "0.09", "0.06", "0.03", "0.01", "0")}


def test_discount_lines_of_blue_invoices_are_negative_and_follow_their_line(universe: Universe) -> None:
    invoices = [
        invoice
        for invoice in universe.month(universe.companies[1].tax_id, MONTH, "issued")
        if not invoice.reverses
    ]  # a red-letter invoice turns a discount positive
    discounted = [
        (invoice, index)
        for invoice in invoices
        for index, line in enumerate(invoice.items)
        if line.name.endswith("*折扣")
    ]
    assert discounted
    for invoice, index in discounted:
        discount, line = invoice.items[index], invoice.items[index - 1]
        assert discount.amount < 0 and discount.rate == line.rate
        assert discount.name == line.name[: line.name.index("*", 1) + 1] + "折扣"


def test_numbers_are_twenty_digits_and_unique_across_the_universe(universe: Universe) -> None:
    numbers = [
        invoice.number
        for company in universe.companies
        for month in ("2025-09", MONTH)
        for direction in ("issued", "received")
        for invoice in universe.month(company.tax_id, month, direction)
    ]
    assert all(len(number) == 20 and number.isdigit() for number in numbers)
    assert len(set(numbers)) == len(numbers) == 2 * 2 * 2 * 120


def test_digital_number_carries_year_region_and_channel(issued: list[Invoice]) -> None:
    demo_region = "11"  # companies[0] is a Beijing company
    assert {(invoice.number[:2], invoice.number[2:4], invoice.number[4]) for invoice in issued} == {
        ("25", demo_region, "2")
    }


def test_issued_invoices_are_sold_by_the_home_company(universe: Universe, issued: list[Invoice]) -> None:
    assert {invoice.seller for invoice in issued} == {universe.companies[0]}
    assert {invoice.direction for invoice in issued} == {"issued"}


def test_received_invoices_are_bought_by_the_home_company(
    universe: Universe, received: list[Invoice]
) -> None:
    assert {invoice.buyer for invoice in received} == {universe.companies[0]}


def test_each_reversed_invoice_has_one_red_letter_partner(
    issued: list[Invoice], received: list[Invoice]
) -> None:
    invoices = issued + received
    reds = {invoice.reverses: invoice for invoice in invoices if invoice.reverses}
    blues = [invoice for invoice in invoices if invoice.status in ("03", "04")]
    assert blues and sorted(reds) == sorted(blue.number for blue in blues)
    for blue in blues:
        red = reds[blue.number]
        assert (red.status, red.kind, red.seller, red.buyer) == ("01", blue.kind, blue.seller, blue.buyer)
        assert blue.issued_at < red.issued_at and f"{red.issued_at:%Y-%m}" == MONTH
        assert red.remark == f"被红冲蓝字数电发票号码：{blue.number} 红字发票信息确认单编号：{red.red_form}"
        assert len(red.red_form) == 16 and red.red_form.isdigit()
        assert red.total < 0


def test_full_reversal_negates_the_whole_blue_invoice(issued: list[Invoice], received: list[Invoice]) -> None:
    invoices = issued + received
    by_number = {invoice.number: invoice for invoice in invoices}
    fully = [
        invoice for invoice in invoices if invoice.reverses and by_number[invoice.reverses].status == "03"
    ]
    assert fully
    for red in fully:
        blue = by_number[red.reverses]
        assert (red.amount, red.tax, red.total) == (-blue.amount, -blue.tax, -blue.total)


def test_partial_reversal_negates_less_than_the_blue_invoice(
    issued: list[Invoice], received: list[Invoice]
) -> None:
    invoices = issued + received
    by_number = {invoice.number: invoice for invoice in invoices}
    partly = [
        invoice for invoice in invoices if invoice.reverses and by_number[invoice.reverses].status == "04"
    ]
    assert partly
    for red in partly:
        assert 0 < -red.total < by_number[red.reverses].total


def test_legacy_invoices_are_received_only_and_shaped_like_legacy(
    issued: list[Invoice], received: list[Invoice]
) -> None:
    assert all(invoice.kind in ("81", "82", "85", "86") and invoice.source == "2" for invoice in issued)
    legacy = [invoice for invoice in received if invoice.legacy_code]
    assert {invoice.kind for invoice in legacy} <= {"01", "04", "08", "10"} and legacy
    for invoice in legacy:
        assert invoice.source == "1" and invoice.number == invoice.legacy_code + invoice.legacy_number
        assert len(invoice.legacy_code) == 12 and len(invoice.legacy_number) == 8
        electronic = invoice.kind in ("08", "10")
        assert (
            (len(invoice.check_code) == 20 and invoice.check_code.isdigit())
            if electronic
            else not invoice.check_code
        )
        assert invoice.has_file is electronic


def test_legacy_share_of_received_is_about_a_tenth() -> None:
    universe = Universe(seed=3, invoices_per_month=1000)
    received = universe.month(universe.companies[0].tax_id, MONTH, "received")
    assert 60 <= sum(1 for invoice in received if invoice.legacy_code) <= 120


@pytest.fixture(scope="module")
def big_month() -> dict[str, list[Invoice]]:
    universe = Universe(seed=3, invoices_per_month=1000)
    home = universe.companies[0].tax_id
    return {direction: universe.month(home, MONTH, direction) for direction in ("received", "issued")}


def test_fully_digital_qr_carries_the_total_and_often_no_check(big_month: dict[str, list[Invoice]]) -> None:
    digital = [invoice for invoice in big_month["received"] if invoice.is_digital]
    for invoice in digital:
        fields = invoice.qr_payload.split(",")
        assert (fields[2], fields[3], fields[4], fields[6]) == (
            "",
            invoice.number,
            f"{invoice.total:.2f}",
            "",
        )
        assert fields[7] in ("", invoice.check_hex)
    empty = sum(invoice.qr_payload.endswith(",") for invoice in digital) / len(digital)
    assert 0.3 < empty < 0.5


def test_legacy_qr_keeps_the_amount_before_tax(big_month: dict[str, list[Invoice]]) -> None:
    legacy = [invoice for invoice in big_month["received"] if invoice.kind in ("08", "10")]
    assert legacy
    for invoice in legacy:
        day = f"{invoice.issued_at:%Y%m%d}"
        assert invoice.qr_payload == (
            f"01,{invoice.kind},{invoice.legacy_code},{invoice.legacy_number},{invoice.amount:.2f},{day},"
            f"{invoice.check_code},{invoice.check_hex},"
        )


def test_fully_digital_paper_invoices_85_86_have_digital_numbers_and_no_file(
    big_month: dict[str, list[Invoice]],
) -> None:
    for direction, invoices in big_month.items():
        paper = [invoice for invoice in invoices if invoice.kind in ("85", "86")]
        assert 5 <= len(paper) <= 40, direction  # about 2 % of fully digital invoices
        for invoice in paper:
            assert (len(invoice.number), invoice.legacy_code, invoice.source) == (20, "", "2")
            assert not invoice.has_file and invoice.is_special is (invoice.kind == "85")


def test_rail_e_tickets_are_received_only_issued_by_a_railway_bureau(
    big_month: dict[str, list[Invoice]],
) -> None:
    rail = [invoice for invoice in big_month["received"] if invoice.kind == "51"]
    assert 20 <= len(rail) <= 60 and not any(invoice.kind == "51" for invoice in big_month["issued"])
    for invoice in rail:
        assert invoice.number[4] == "9" and invoice.seller.name.startswith("中国铁路")
        assert is_valid_uscc(invoice.seller.tax_id) and (invoice.status, invoice.clerk) == ("01", "")
        assert [line.rate for line in invoice.items] == [Decimal("0.09")]
        assert invoice.total * 2 == int(invoice.total * 2)  # fares are in half yuan
        assert invoice.has_file and invoice.qr_payload.startswith(
            f"01,51,,{invoice.number},{invoice.total:.2f},"
        )


def test_added_invoice_joins_its_month_in_time_order_and_is_findable() -> None:
    first, second = Universe(seed=5, invoices_per_month=20), Universe(seed=5, invoices_per_month=20)
    company = first.companies[0].tax_id
    added = first.add_invoice(company, MONTH, "received")
    month = first.month(company, MONTH, "received")
    assert len(month) == 21 and added in month
    assert [invoice.issued_at for invoice in month] == sorted(invoice.issued_at for invoice in month)
    assert first.find(added.number) == added == second.add_invoice(company, MONTH, "received")
    assert added.number not in {invoice.number for invoice in month if invoice is not added}


def test_find_returns_none_for_an_unknown_number(universe: Universe) -> None:
    assert universe.find("25119999999999999999") is None


def test_unknown_company_is_refused(universe: Universe) -> None:
    with pytest.raises(ValueError, match="no home company"):
        universe.month("91110000000000000X", MONTH, "issued")


def test_listing_row_has_the_portal_keys_and_shapes() -> None:
    assert hand_made_invoice().listing_row() == {
        "Fphm": "25112000000012345678",
        "ZzfpDm": "",
        "Zzfphm": "",
        "FplxDm": "81",
        "FpztDm": "01",
        "FplyDm": "2",
        "Xsfnsrsbh": "91110108MA01GUF37R",
        "Xsfmc": "北京星辰信息科技有限公司",
        "Gmfnsrsbh": "91310115MA1K4ABC7T",
        "Gmfmc": "上海云帆商贸有限公司",
        "Kprq": "2025-10-08 10:17:57",
        "Hjje": 5000.0,
        "Hjse": 650.0,
        "Jshj": 5650.0,
        "Kpr": "张三",
    }


def test_derived_fields_of_a_digital_invoice() -> None:
    invoice = hand_made_invoice()
    assert invoice.total_upper == "伍仟陆佰伍拾圆整"
    assert invoice.kprq_compact == "20251008101757"
    assert invoice.date_cn == "2025年10月08日"
    assert invoice.check_hex == "F341"
    assert (
        invoice.qr_payload == "01,31,,25112000000012345678,5650.00,20251008,,F341"
    )  # 价税合计, as real files


def test_legacy_qr_payload_has_code_number_amount_before_tax_and_check_code() -> None:
    invoice = hand_made_invoice(
        kind="10", number="01100025100200001234", legacy_code="011002510021", legacy_number="00001234",
        check_code="12345678901234567890",
    )  # fmt: skip
    assert (
        invoice.qr_payload
        == f"01,10,011002510021,00001234,5000.00,20251008,12345678901234567890,{invoice.check_hex},"
    )


def test_ordinary_invoices_use_qr_kind_32_legacy_their_own_kind_and_paper_has_no_file() -> None:
    assert hand_made_invoice(kind="82").qr_payload.startswith("01,32,,")
    assert hand_made_invoice(kind="10").qr_payload.startswith("01,10,")
    assert hand_made_invoice(kind="08").qr_payload.startswith("01,08,")
    assert [hand_made_invoice(kind=kind).has_file for kind in ("81", "82", "08", "10", "01", "04")] == [
        True,
        True,
        True,
        True,
        False,
        False,
    ]


# --- the calendar: nothing before the platforms, nothing after today, well-formed numbers ---------------------

TODAY = date(2025, 10, 16)


@pytest.fixture(scope="module")
def dated() -> Universe:
    return Universe(seed=7, companies=2, invoices_per_month=60, today=lambda: TODAY)


@pytest.mark.parametrize(
    "month",
    ["1899-12", "2016-12", "2025-11", "2030-01", "9999-12", "0000-01", "2025-13", "2025-1", "october"],
)
def test_months_outside_the_calendar_hold_nothing(dated: Universe, month: str) -> None:
    home = dated.companies[0].tax_id
    assert dated.month(home, month, "received") == dated.month(home, month, "issued") == []


def test_future_months_hold_nothing_on_the_real_today() -> None:
    universe = Universe(invoices_per_month=10)
    assert universe.month(universe.companies[0].tax_id, f"{date.today().year + 1}-01", "issued") == []


def test_current_month_holds_its_complete_days_only(dated: Universe) -> None:
    month = dated.month(dated.companies[0].tax_id, "2025-10", "received")
    assert len(month) == round(60 * 15 / 31)  # 1 to 15 October: today's invoices are not listed yet
    assert {invoice.issued_at.date() < TODAY for invoice in month} == {True}
    first_day = Universe(invoices_per_month=60, today=lambda: date(2025, 10, 1))
    assert first_day.month(first_day.companies[0].tax_id, "2025-10", "issued") == []


def test_no_invoice_is_added_outside_the_calendar(dated: Universe) -> None:
    with pytest.raises(ValueError, match="2025-11 holds no invoices"):
        dated.add_invoice(dated.companies[0].tax_id, "2025-11", "received")


def test_before_fully_digital_invoices_every_invoice_is_legacy(dated: Universe) -> None:
    home = dated.companies[0].tax_id
    before = dated.month(home, "2021-11", "issued") + dated.month(home, "2021-11", "received")
    assert before and {invoice.kind for invoice in before} <= {"01", "04", "08", "10"}
    assert {invoice.source for invoice in before} == {"1"}
    assert any(invoice.kind in ("81", "82") for invoice in dated.month(home, "2021-12", "issued"))


def well_formed(invoice: Invoice) -> bool:
    """20-digit 数电 number: year and region of the issue; legacy: 12-digit code (region, year) + 8 digits."""
    year = f"{invoice.issued_at:%y}"
    if not invoice.legacy_code:
        number = invoice.number
        return bool(
            number.isdigit() and len(number) == 20 and number[:2] == year and number[2:4] in REGION_BY_CODE
        )
    code, serial = invoice.legacy_code, invoice.legacy_number
    return (code + serial == invoice.number and code.isdigit() and len(code) == 12 and len(serial) == 8
            and serial.isdigit() and code[1:3] in REGION_BY_CODE and code[5:7] == year)  # fmt: skip


def test_every_month_from_2017_to_today_has_well_formed_numbers_in_its_own_month(dated: Universe) -> None:
    home = dated.companies[1].tax_id
    months = [f"{year}-{month:02d}" for year in range(2017, 2026) for month in (1, 6, 12)] + ["2025-10"]
    for month in months:
        for direction in ("issued", "received"):
            invoices = dated.month(home, month, direction)
            assert invoices or month > "2025-10", month
            assert [invoice.number for invoice in invoices if not well_formed(invoice)] == [], month
            assert {f"{invoice.issued_at:%Y-%m}" for invoice in invoices} <= {month}
            assert all(invoice.issued_at.date() < TODAY for invoice in invoices)
