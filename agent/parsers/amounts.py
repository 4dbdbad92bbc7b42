"""Money as the invoice prints it: fen-exact decimals and the upper-case Chinese amount (大写), both ways."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

FEN = Decimal("0.01")
_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_SMALL_UNITS = ("", "拾", "佰", "仟")
_GROUP_UNITS = ("", "万", "亿", "万亿")
_NEGATIVE_MARKS = ("（负数）", "(负数)", "负")


def to_fen(value: Decimal | str | float) -> Decimal:
    """Round half-up to the fen, as the portal does; refuses text that is not a number."""
    try:
        return Decimal(str(value)).quantize(FEN, rounding=ROUND_HALF_UP)
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc


def parse_amount(text: str) -> Decimal | None:
    """'¥5,650.00', '￥-12.5', '-¥3.00' -> Decimal; None when there is no number in the text."""
    cleaned = text.replace(",", "").replace("，", "").replace(" ", "")
    match = re.search(r"(-?)[¥￥]?(-?)(\d+(?:\.\d+)?)", cleaned)
    if not match:
        return None
    sign = "-" if (match.group(1) or match.group(2)) else ""
    return to_fen(sign + match.group(3))


def _group_to_upper(group: int) -> str:
    """0..9999 -> upper-case digits with 仟佰拾, one 零 for each run of inner zeros."""
    out, pending_zero = "", False
    for position in range(3, -1, -1):
        digit = group // 10**position % 10
        if digit == 0:
            pending_zero = bool(out)
            continue
        if pending_zero:
            out += "零"
            pending_zero = False
        out += _DIGITS[digit] + _SMALL_UNITS[position]
    return out


def _integer_to_upper(value: int) -> str:
    groups = []
    while value:
        groups.append(value % 10000)
        value //= 10000
    out = ""
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            continue
        if out and (group < 1000 or groups[index + 1] == 0):
            out += "零"  # a gap in the digits between two non-zero groups
        out += _group_to_upper(group) + _group_unit(groups, index)
    return out


def _group_unit(groups: list[int], index: int) -> str:
    """万亿 only when no 亿 group follows: 1000100000000 reads 壹万零壹亿, not 壹万亿零壹亿."""
    if index == 3 and groups[2]:
        return "万"
    return _GROUP_UNITS[index]


def to_upper(value: Decimal) -> str:
    """Decimal -> 大写 as printed on an invoice: 5650.00 -> 伍仟陆佰伍拾圆整, -1.05 -> 负壹圆零伍分."""
    value = to_fen(value)
    sign = "负" if value < 0 else ""
    fen_total = int(abs(value) * 100)
    integer, jiao, fen = fen_total // 100, fen_total // 10 % 10, fen_total % 10
    if fen_total == 0:
        return "零圆整"
    out = _integer_to_upper(integer) + "圆" if integer else ""
    if jiao == 0 and fen == 0:
        return sign + out + "整"
    if integer and (integer % 10 == 0 or jiao == 0):
        out += "零"
    if jiao:
        out += _DIGITS[jiao] + "角"
    if fen:
        out += _DIGITS[fen] + "分"
    else:
        out += "整"
    return sign + out


def _upper_integer_value(text: str) -> int:
    """Split at the first 亿, then at the first 万, so that 壹万亿 and 壹万零壹亿 both read right."""
    if "亿" in text:
        high, _, low = text.partition("亿")
        return _upper_integer_value(high) * 10**8 + _upper_integer_value(low)
    if "万" in text:
        high, _, low = text.partition("万")
        return _upper_section_value(high) * 10**4 + _upper_section_value(low)
    return _upper_section_value(text)


def _upper_section_value(text: str) -> int:
    """0..9999 written with 仟佰拾 and 零; a bare 拾 means 10."""
    section, digit = 0, 0
    for char in text:
        if char in _DIGITS:
            digit = _DIGITS.index(char)
        elif char in "拾佰仟":
            section += (digit or 1) * 10 ** ("拾佰仟".index(char) + 1)
            digit = 0
        else:
            raise ValueError(f"unexpected character {char!r} in upper-case amount")
    return section + digit


def from_upper(text: str) -> Decimal:
    """大写 -> Decimal; accepts 圆 or 元, 整 or 正, a leading 负 or （负数）, and stray spaces or ⓧ marks."""
    cleaned = re.sub(r"[\sⓧ⊗]", "", text)
    negative = cleaned.startswith(_NEGATIVE_MARKS)
    for mark in _NEGATIVE_MARKS:
        cleaned = cleaned.removeprefix(mark)
    cleaned = cleaned.rstrip("整正")
    integer_text, _, fraction = (
        re.split(r"([圆元])", cleaned, maxsplit=1) if re.search(r"[圆元]", cleaned) else ("", "", cleaned)
    )
    if not integer_text and not fraction:
        raise ValueError(f"not an upper-case amount: {text!r}")
    jiao = re.search(r"([零壹贰叁肆伍陆柒捌玖])角", fraction)
    fen = re.search(r"([零壹贰叁肆伍陆柒捌玖])分", fraction)
    leftover = re.sub(r"[零壹贰叁肆伍陆柒捌玖][角分]|零", "", fraction)
    if leftover:
        raise ValueError(f"not an upper-case amount: {text!r}")
    fen_total = _upper_integer_value(integer_text) * 100
    fen_total += (_DIGITS.index(jiao.group(1)) * 10 if jiao else 0) + (
        _DIGITS.index(fen.group(1)) if fen else 0
    )
    return to_fen(Decimal(-fen_total if negative else fen_total) / 100)
