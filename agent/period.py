"""Which invoices a command means: `--month YYYY-MM`, or `--from YYYY-MM-DD --to YYYY-MM-DD`.

A period that cannot hold invoices is refused before anything logs in: before the platform's first invoices,
or after today (a range reaching into the future would also be split into months of empty queries).
"""

from __future__ import annotations

import calendar
import re
from datetime import date

from agent.errors import SettingsError

# The earliest month any of the platform's invoices can be from: legacy e-invoices (增值税电子普通发票) issued
# from 2017 on are listed there too. Fully digital (数电) invoices start later (pilots from 2021-12).
FIRST_MONTH = date(2017, 1, 1)

MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def parse_month(value: str, today: date | None = None) -> tuple[date, date]:
    """First and last day of a month that can hold invoices."""
    match = MONTH.match(value.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise SettingsError(f"invalid --month {value!r}: use YYYY-MM, e.g. 2025-10")
    year, month = int(match.group(1)), int(match.group(2))
    if (year, month) < (FIRST_MONTH.year, FIRST_MONTH.month):  # also before year 1, which `date` cannot hold
        raise SettingsError(f"--month {value}: the platform holds no invoices before {FIRST_MONTH:%Y-%m}")
    start = date(year, month, 1)
    today = today or date.today()
    if start > today:
        raise SettingsError(f"--month {value} is in the future (today is {today}); it cannot hold invoices yet")
    return start, date(year, month, calendar.monthrange(year, month)[1])


def parse_day(value: str, flag: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise SettingsError(f"invalid {flag} {value!r}: use YYYY-MM-DD, e.g. 2025-10-01") from None


def period(month: str | None, date_from: str | None, date_to: str | None, today: date | None = None) -> tuple[date, date]:
    """The first and last day asked for, from --month or --from/--to; SettingsError naming the fix."""
    if month and (date_from or date_to):
        raise SettingsError("give either --month or --from/--to, not both")
    if month:
        return parse_month(month, today)
    if not (date_from and date_to):
        raise SettingsError("say which invoices: --month YYYY-MM, or --from YYYY-MM-DD --to YYYY-MM-DD")
    start, end = parse_day(date_from, "--from"), parse_day(date_to, "--to")
    if end < start:
        raise SettingsError(f"--to {end} is before --from {start}; swap them")
    today = today or date.today()
    if start < FIRST_MONTH:
        raise SettingsError(f"--from {start}: the platform holds no invoices before {FIRST_MONTH}; start there or later")
    if end > today:
        raise SettingsError(f"--to {end} is after today ({today}); invoices cannot be issued in the future")
    return start, end
