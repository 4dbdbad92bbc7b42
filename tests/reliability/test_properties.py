"""Properties over any input: amounts to the fen, months and ranges, identifiers, file names.
(tests/unit/test_amounts.py and test_archive.py hold the round trip and the basic safe-name properties.)"""

from __future__ import annotations

import calendar
import datetime as dt
import string
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.archive import QUARANTINE_FOLDER, Archive, sanitize_component
from agent.errors import SettingsError
from agent.flows.search import split_days, split_range
from agent.parsers.amounts import FEN, from_upper, to_fen, to_upper
from agent.parsers.ids import USCC_ALPHABET, is_digital_invoice_number, is_valid_uscc, uscc_check_char
from agent.period import FIRST_MONTH, parse_month, period
from agent.records import Direction, FileFormat, InvoiceRow

# No deadline: the machine is shared, and a slow example is not a wrong one.
relaxed = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

fen = st.integers(min_value=-(10**15), max_value=10**15)
amounts = fen.map(lambda value: Decimal(value) / 100)
UPPER_CHARS = set("零壹贰叁肆伍陆柒捌玖拾佰仟万亿圆角分整负")

# -- amounts


@relaxed
@given(st.decimals(min_value=-(10**12), max_value=10**12, allow_nan=False, allow_infinity=False, places=6))
def test_to_fen_is_the_nearest_fen_and_stays_put(value: Decimal) -> None:
    rounded = to_fen(value)
    assert rounded.as_tuple().exponent == -2
    assert abs(rounded - value) <= FEN / 2
    assert to_fen(rounded) == rounded


@relaxed
@given(amounts)
def test_to_upper_writes_only_amount_characters_and_ends_in_yuan_jiao_or_fen(value: Decimal) -> None:
    upper = to_upper(value)
    assert set(upper) <= UPPER_CHARS
    assert upper.endswith(("整", "分"))
    assert upper.startswith("负") == (value < 0)


@relaxed
@given(amounts, st.booleans(), st.booleans(), st.sampled_from(["", "ⓧ", "⊗ ", " "]), st.booleans())
def test_from_upper_reads_the_printed_variants_of_any_amount(
    value: Decimal, yuan: bool, zheng: bool, mark: str, paren_negative: bool
) -> None:
    printed = to_upper(value)
    if yuan:
        printed = printed.replace("圆", "元")
    if zheng:
        printed = printed.replace("整", "正")
    if paren_negative and printed.startswith("负"):
        printed = "（负数）" + printed.removeprefix("负")
    assert from_upper(mark + " ".join(printed)) == value


@relaxed
@given(amounts, amounts)
def test_different_amounts_never_print_the_same(first: Decimal, second: Decimal) -> None:
    assert (to_upper(first) == to_upper(second)) == (first == second)


# -- months and ranges

years = st.integers(min_value=FIRST_MONTH.year, max_value=9998)
days = st.dates(min_value=FIRST_MONTH, max_value=dt.date(2100, 12, 31))


@relaxed
@given(years, st.integers(min_value=1, max_value=12))
def test_parse_month_spans_the_whole_month(year: int, month: int) -> None:
    start, end = parse_month(f"{year:04d}-{month:02d}", today=dt.date.max)
    assert start == dt.date(year, month, 1)
    assert (end.year, end.month, end.day) == (year, month, calendar.monthrange(year, month)[1])
    assert (end + dt.timedelta(days=1)).day == 1


@relaxed
@given(st.dates(max_value=dt.date(9999, 11, 30)), st.dates(max_value=dt.date(9999, 11, 30)))
def test_parse_month_refuses_months_before_the_platform_or_after_today(day: dt.date, today: dt.date) -> None:
    month = f"{day.year:04d}-{day.month:02d}"
    if day.replace(day=1) < FIRST_MONTH or day.replace(day=1) > today:
        with pytest.raises(SettingsError, match="no invoices before|in the future"):
            parse_month(month, today)
    else:
        assert parse_month(month, today)[0] == day.replace(day=1)


@relaxed
@given(st.integers(min_value=1, max_value=9998), st.integers(min_value=13, max_value=99) | st.just(0))
def test_parse_month_refuses_months_that_do_not_exist(year: int, month: int) -> None:
    with pytest.raises(SettingsError, match="use YYYY-MM"):
        parse_month(f"{year:04d}-{month:02d}")


@relaxed
@given(days, days)
def test_period_takes_a_range_in_order_and_refuses_it_reversed(first: dt.date, second: dt.date) -> None:
    start, end = min(first, second), max(first, second)
    assert period(None, start.isoformat(), end.isoformat(), today=dt.date.max) == (start, end)
    if start != end:
        with pytest.raises(SettingsError, match="swap them"):
            period(None, end.isoformat(), start.isoformat(), today=dt.date.max)


@relaxed
@given(days, st.integers(min_value=0, max_value=800), st.integers(min_value=1, max_value=366))
def test_split_range_covers_every_day_once_in_chunks_of_at_most_max_days(
    start: dt.date, length: int, max_days: int
) -> None:
    end = start + dt.timedelta(days=length)
    chunks = split_range(start, end, max_days)
    covered = [first + dt.timedelta(days=n) for first, last in chunks for n in range((last - first).days + 1)]
    assert covered == [start + dt.timedelta(days=n) for n in range(length + 1)]
    assert all(1 <= (last - first).days + 1 <= max_days for first, last in chunks)
    assert len(chunks) == -(-(length + 1) // max_days)


@relaxed
@given(days, st.integers(min_value=0, max_value=60), st.integers(min_value=1, max_value=100))
def test_split_days_covers_every_day_once_in_parts_of_nearly_equal_length(start: dt.date, length: int, parts: int) -> None:
    end = start + dt.timedelta(days=length)
    chunks = split_days(start, end, parts)
    covered = [first + dt.timedelta(days=n) for first, last in chunks for n in range((last - first).days + 1)]
    assert covered == [start + dt.timedelta(days=n) for n in range(length + 1)]
    assert len(chunks) == min(parts, length + 1)
    sizes = {(last - first).days + 1 for first, last in chunks}
    assert max(sizes) - min(sizes) <= 1


# -- identifiers

uscc_bodies = st.builds(
    lambda head, digits, tail: head + digits + tail,
    st.text(st.sampled_from(USCC_ALPHABET), min_size=2, max_size=2),
    st.text(st.sampled_from(string.digits), min_size=6, max_size=6),
    st.text(st.sampled_from(USCC_ALPHABET), min_size=9, max_size=9),
)


@relaxed
@given(uscc_bodies, st.data())
def test_uscc_check_character_catches_every_single_wrong_character(body: str, data: st.DataObject) -> None:
    code = body + uscc_check_char(body)
    assert is_valid_uscc(code)
    position = data.draw(st.integers(min_value=0, max_value=17))
    wrong = data.draw(st.sampled_from(USCC_ALPHABET).filter(lambda char: char != code[position]))
    assert not is_valid_uscc(code[:position] + wrong + code[position + 1 :])


any_digits = st.characters(categories=["Nd"])  # ０-９, ٠-٩ and the like: digits to `\d`, not to the portal


@relaxed
@given(st.text(min_size=18, max_size=18) | st.builds(lambda head, digits, tail: head + digits + tail,
       st.text(st.sampled_from(USCC_ALPHABET), min_size=2, max_size=2), st.text(any_digits, min_size=6, max_size=6),
       st.text(st.sampled_from(USCC_ALPHABET), min_size=10, max_size=10)))
def test_any_18_characters_are_judged_without_error(text: str) -> None:
    assert not is_valid_uscc(text) or text.isascii()


@relaxed
@given(st.text(max_size=24) | st.text(any_digits, min_size=20, max_size=20))
def test_digital_invoice_number_is_exactly_20_ascii_digits(text: str) -> None:
    assert is_digital_invoice_number(text) == (len(text) == 20 and all(char in string.digits for char in text))


# -- file names

texts = st.text(st.characters(exclude_categories=()), max_size=200)
numbers = st.text(st.sampled_from(string.digits), min_size=20, max_size=20)


@relaxed
@given(texts)
def test_sanitize_component_is_idempotent(text: str) -> None:
    once = sanitize_component(text)
    assert sanitize_component(once) == once


def row(number: str, name: str) -> InvoiceRow:
    return InvoiceRow(
        direction=Direction.received, number=number, kind="82", status="01", seller_tax_id="S", seller_name=name,
        buyer_tax_id="B", buyer_name=name, issued_at=dt.datetime(2025, 10, 8, 10, 17, 57),
        amount=Decimal("1.00"), tax=Decimal("0.13"), total=Decimal("1.13"),
    )


@relaxed
@given(numbers, numbers, texts, texts, st.sampled_from(list(FileFormat)), st.sampled_from(list(FileFormat)))
def test_two_invoice_files_never_share_a_path_whatever_the_names(
    tmp_path: Path, first: str, second: str, name: str, other_name: str, fmt: FileFormat, other_fmt: FileFormat
) -> None:
    archive = Archive(tmp_path / "archive")
    one, two = archive.path_for(row(first, name), fmt, name), archive.path_for(row(second, other_name), other_fmt, name)
    assert one != two or (first, fmt) == (second, other_fmt)


@relaxed
@given(numbers, texts, texts)
def test_quarantine_stays_inside_its_folder(tmp_path: Path, number: str, name: str, company: str) -> None:
    archive = Archive(tmp_path / "archive")
    path = archive.quarantine_path(row(number, name), FileFormat.pdf, company)
    assert path.is_relative_to(archive.root / QUARANTINE_FOLDER)
    assert path.relative_to(archive.root / QUARANTINE_FOLDER) == archive.path_for(row(number, name), FileFormat.pdf, company).relative_to(archive.root)
