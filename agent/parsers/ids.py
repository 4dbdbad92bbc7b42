"""Identifiers: the 18-character unified social credit code (GB 32100-2015) and invoice numbers."""

from __future__ import annotations

import re

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_SHAPE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}")  # [0-9]: \d takes any script's digits


def uscc_check_char(first17: str) -> str:
    """The 18th character of a unified social credit code, from its first 17."""
    total = sum(USCC_ALPHABET.index(char) * weight for char, weight in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def is_valid_uscc(code: str) -> bool:
    return bool(_USCC_SHAPE.fullmatch(code)) and uscc_check_char(code[:17]) == code[17]


def is_valid_taxpayer_id(code: str) -> bool:
    """A unified social credit code, or an old-style 15/17/20-character taxpayer id."""
    return is_valid_uscc(code) if len(code) == 18 else bool(re.fullmatch(r"[0-9A-Z]{15}|[0-9A-Z]{17}|[0-9A-Z]{20}", code))


def is_digital_invoice_number(number: str) -> bool:
    """20 digits: 2-digit year, 2-digit region, 1-digit channel, 15-digit sequence."""
    return bool(re.fullmatch(r"[0-9]{20}", number))
