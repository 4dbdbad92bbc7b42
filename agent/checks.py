"""`fapiao verify` and `fapiao report`: what the archive holds, judged file by file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.errors import SettingsError
from agent.ledger import LEDGER_NAME, EntryState, Ledger
from agent.records import InvoiceRow, Verdict
from agent.verify import verify_file

INVOICE_SUFFIXES = (".pdf", ".ofd", ".xml")


def invoice_files(paths: list[Path]) -> Iterator[Path]:
    """The given files, and the invoice files inside the given folders (quarantine and debug folders aside)."""
    for path in paths:
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                if found.suffix.lower() in INVOICE_SUFFIXES and not any(p.startswith("_") for p in found.parts):
                    yield found
        else:
            yield path


def find_ledger_root(path: Path) -> Path | None:
    for folder in [path.resolve(), *path.resolve().parents]:
        if (folder / LEDGER_NAME).is_file():
            return folder
    return None


def listing_row(path: Path, ledgers: dict[Path, Ledger]) -> InvoiceRow | None:
    root = find_ledger_root(path if path.is_dir() else path.parent)
    if root is None:
        return None
    if root not in ledgers:
        ledgers[root] = Ledger.open(root)
    entry = ledgers[root].find_by_path(path)
    return entry.row if entry else None


def verify_paths(paths: list[Path], check_qr: bool = True) -> list[Verdict]:
    ledgers: dict[Path, Ledger] = {}
    try:
        return [verify_file(path, listing_row(path, ledgers), check_qr=check_qr) for path in invoice_files(paths)]
    finally:
        for ledger in ledgers.values():
            ledger.close()


def archive_report(root: Path, month: str | None) -> dict[str, Any]:
    if not (root / LEDGER_NAME).is_file():
        raise SettingsError(f"no archive at {root} (no {LEDGER_NAME}); pass the folder given to --out")
    with Ledger.open(root) as ledger:
        counts = ledger.counts(month=month)
        problems = [
            {"number": e.number, "direction": e.direction.value, "format": e.format.value, "state": e.state.value,
             "error": e.last_error, "path": e.path}
            for e in ledger.entries(month=month)
            if e.state not in (EntryState.verified, EntryState.paper)
        ]
    return {
        "archive": str(root),
        "month": month,
        "counts": {state.value: count for state, count in counts.items()},
        "not_verified": problems,
        "complete": not problems,
    }
