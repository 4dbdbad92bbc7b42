"""Money as printed: fen rounding, amounts in text, the upper-case 大写 amount both ways."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.parsers.amounts import from_upper, parse_amount, to_fen, to_upper

# Up to 10^16 yuan, the largest amount with a name (万亿 groups); invoices stay far below.
fen_values = st.integers(min_value=-(10**18) + 1, max_value=10**18 - 1).map(lambda fen: Decimal(fen) / 100)


@pytest.mark.parametrize(
    ("value", "upper"),
    [
        ("5650.00", "伍仟陆佰伍拾圆整"),
        ("0.00", "零圆整"),
        ("0.05", "伍分"),
        ("0.50", "伍角整"),
        ("190.19", "壹佰玖拾圆零壹角玖分"),
        ("10.50", "壹拾圆零伍角整"),
        ("1005.00", "壹仟零伍圆整"),
        ("100000.00", "壹拾万圆整"),
        ("100010000.00", "壹亿零壹万圆整"),
        ("-1.05", "负壹圆零伍分"),
        ("1000000000000.00", "壹万亿圆整"),
        ("1000100000000.00", "壹万零壹亿圆整"),
    ],
)
def test_to_upper_writes_the_invoice_form(value: str, upper: str) -> None:
    assert to_upper(Decimal(value)) == upper


@pytest.mark.parametrize(
    ("upper", "value"),
    [
        ("柒佰伍拾陆元陆角叁分", "756.63"),  # 元 instead of 圆, as on real legacy invoices
        ("贰拾柒圆整", "27.00"),
        ("壹佰玖拾元零壹角玖分", "190.19"),
        ("ⓧ 伍仟陆佰伍拾圆正", "5650.00"),
        ("（负数）壹仟圆整", "-1000.00"),
        ("拾圆整", "10.00"),
        ("壹万亿零壹亿圆整", "1000100000000.00"),  # the form written before the 万亿 fix still reads right
    ],
)
def test_from_upper_reads_printed_variants(upper: str, value: str) -> None:
    assert from_upper(upper) == Decimal(value)


@pytest.mark.parametrize("text", ["", "伍仟陆佰伍拾圆整多", "hello"])
def test_from_upper_refuses_what_is_not_an_amount(text: str) -> None:
    with pytest.raises(ValueError):
        from_upper(text)


@given(fen_values)
def test_upper_round_trip(value: Decimal) -> None:
    assert from_upper(to_upper(value)) == value


@given(fen_values)
def test_parse_amount_reads_formatted_amounts(value: Decimal) -> None:
    assert parse_amount(f"{value:.2f}") == value
    assert parse_amount(f"¥{value:,.2f}") == value
    assert parse_amount(f"￥ {value:.2f}") == value


@given(fen_values.filter(lambda value: value > 0))
def test_parse_amount_reads_the_sign_before_the_currency(value: Decimal) -> None:
    assert parse_amount(f"-¥{value:.2f}") == -value


@pytest.mark.parametrize(
    ("text", "value"),
    [("¥5,650.00", "5650.00"), ("（小写）￥-12.5", "-12.50"), ("合计 1，234.56", "1234.56"), ("***", None)],
)
def test_parse_amount_cases(text: str, value: str | None) -> None:
    assert parse_amount(text) == (Decimal(value) if value else None)


def test_to_fen_rounds_half_up() -> None:
    assert to_fen("2.345") == Decimal("2.35")
    assert to_fen(Decimal("-2.345")) == Decimal("-2.35")


def test_to_fen_refuses_text() -> None:
    with pytest.raises(ValueError, match="not an amount"):
        to_fen("abc")
