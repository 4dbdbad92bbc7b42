"""`fapiao status`: companies × months as the ledger holds them (listed, verified, pending, failed, quarantined,
paper, not tried yet) and each one's last run; a table for people, or one JSON object."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.errors import SettingsError
from agent.ledger import LEDGER_NAME, CompanyMonth, Ledger

COLUMNS: tuple[tuple[str, str], ...] = (
    ("listed", "listed"), ("verified", "verified"), ("pending", "pending"), ("failed", "failed"),
    ("quarantined", "quarant."), ("paper", "paper"), ("untried", "untried"),
)  # (CompanyMonth field, header)
COUNTS = tuple(field for field, _ in COLUMNS)


def company_months(ledger: Ledger, month: str | None = None) -> list[CompanyMonth]:
    """Every company-month of the ledger (or of one month), by company then month."""
    return [row for row in ledger.company_months() if month is None or row.month == month]


def open_ledger(out: Path, database_url: str | None) -> Ledger:
    """The archive's ledger, read only by intent: SettingsError when there is no archive to show."""
    if database_url is None and not (out / LEDGER_NAME).is_file():
        raise SettingsError(f"no archive at {out} (no {LEDGER_NAME}); pass --out or --config, or run `fapiao download` first")
    return Ledger.open(out, database_url)


def totals(rows: list[CompanyMonth]) -> dict[str, int]:
    return {field: sum(getattr(row, field) for row in rows) for field in COUNTS}


def status_json(rows: list[CompanyMonth], month: str | None) -> dict[str, Any]:
    return {
        "month": month,
        "company_months": [
            {**row.model_dump(include={"company_id", "month", *COUNTS}), "complete": row.complete,
             "last_run_at": row.last_run_at.isoformat(timespec="seconds") if row.last_run_at else None}
            for row in rows
        ],
        "totals": totals(rows),
        "complete": all(row.complete for row in rows),
    }


def render_status(rows: list[CompanyMonth], month: str | None) -> str:
    """The table a person reads: one line per company-month, its counts, its last run, and a total line."""
    if not rows:
        return f"nothing listed yet{f' for {month}' if month else ''}"
    header = f"{'company':<18}  {'month':<7}  " + "  ".join(f"{name:>8}" for _, name in COLUMNS) + "  last run"
    lines = [header, "-" * len(header)]
    for row in rows:
        counts = "  ".join(f"{getattr(row, field):>8,}" for field in COUNTS)
        last = f"{row.last_run_at:%Y-%m-%d %H:%M}" if row.last_run_at else "-"
        mark = "" if row.complete else "  gaps"
        lines.append(f"{row.company_id:<18}  {row.month:<7}  {counts}  {last}{mark}")
    sums = totals(rows)
    lines.append("-" * len(header))
    lines.append(f"{f'{len(rows)} company-months':<27}  " + "  ".join(f"{sums[field]:>8,}" for field in COUNTS))
    return "\n".join(lines)
