"""`fapiao verify` and `fapiao report`: what the archive holds, judged file by file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.archive import Archive
from agent.errors import SettingsError
from agent.ledger import LEDGER_NAME, EntryState, Ledger, LedgerEntry
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


class Ledgers:
    """The ledger that lists each file, each opened once: with `database_url`, the PostgreSQL one for files inside
    the archive `out`; for other files (and without it) the SQLite ledger of the nearest folder above that has one."""

    def __init__(self, out: Path | None = None, database_url: str | None = None) -> None:
        self.out = out.resolve() if out is not None and database_url else None
        self.database_url = database_url
        self.opened: dict[Path, Ledger] = {}

    def listing_row(self, path: Path) -> InvoiceRow | None:
        path = path.absolute()  # the ledger takes relative paths as relative to its root, not to here
        root = self._root_of(path if path.is_dir() else path.parent)
        if root is None:
            return None
        if root not in self.opened:
            self.opened[root] = Ledger.open(root, self.database_url if root == self.out else None)
        entry = self.opened[root].find_by_path(path)
        return entry.row if entry else None

    def close(self) -> None:
        for ledger in self.opened.values():
            ledger.close()

    def _root_of(self, folder: Path) -> Path | None:
        if self.out is not None and folder.resolve().is_relative_to(self.out):
            return self.out
        return find_ledger_root(folder)


def verify_paths(
    paths: list[Path], check_qr: bool = True, out: Path | None = None, database_url: str | None = None
) -> list[Verdict]:
    """Each invoice file checked, against its listing where a ledger has one (see Ledgers)."""
    ledgers = Ledgers(out, database_url)
    try:
        return [verify_file(path, ledgers.listing_row(path), check_qr=check_qr) for path in invoice_files(paths)]
    finally:
        ledgers.close()


def archive_report(root: Path, month: str | None, database_url: str | None = None) -> dict[str, Any]:
    """Counts per state and every file not verified, from the ledger; a verified file that is gone from the
    archive or differs from its recorded sha256 is not counted verified but named (the next download fetches
    it again, as it re-checks every verified file it lists). With `database_url` the ledger is in PostgreSQL."""
    if database_url is None and not (root / LEDGER_NAME).is_file():
        raise SettingsError(f"no archive at {root} (no {LEDGER_NAME}); pass the folder given to --out")
    with Ledger.open(root, database_url) as ledger:
        counts = {state.value: count for state, count in ledger.counts(month=month).items()}
        entries = list(ledger.entries(month=month))
    problems = []
    for entry in entries:
        if entry.state is EntryState.verified:
            gone = file_gone(root, entry)
            if gone:
                counts[EntryState.verified.value] -= 1
                counts[gone] = counts.get(gone, 0) + 1
                problems.append(_problem(entry, gone, GONE_REASONS[gone].format(when=f"{entry.updated_at:%Y-%m-%d}")))
        elif entry.state is not EntryState.paper:
            problems.append(_problem(entry, entry.state.value, entry.last_error))
    return {
        "archive": str(root.resolve()),
        "month": month,
        "counts": counts,
        "not_verified": problems,
        "complete": not problems,
    }


GONE_REASONS = {
    "missing": "verified on {when}, the file is no longer there; the next download fetches it again",
    "changed": "verified on {when}, the file has changed since (sha256 differs); the next download fetches it again",
}


def file_gone(root: Path, entry: LedgerEntry) -> str | None:
    """"missing" or "changed" when a verified entry's file is not what was verified, else None."""
    path = root / (entry.path or "")
    if not entry.path or not path.is_file():
        return "missing"
    try:
        return None if Archive.sha256_of(path) == entry.sha256 else "changed"
    except OSError:
        return "missing"


def _problem(entry: LedgerEntry, state: str, error: str) -> dict[str, Any]:
    return {
        "number": entry.number, "direction": entry.direction.value, "format": entry.format.value, "state": state,
        "error": error, "path": entry.path,
    }


REPORT_ORDER = ("verified", "paper", "failed", "pending", "quarantined", "missing", "changed", "listed", "downloaded")


def render_report(report: dict[str, Any]) -> str:
    """The report as a person reads it: a table of counts, then each file not verified with its reason."""
    month = report["month"] or "all months"
    lines = [f"archive {report['archive']} · {month}", ""]
    known = [state for state in REPORT_ORDER if state in report["counts"]]
    ordered = known + [state for state in report["counts"] if state not in known]
    counts = {state: report["counts"][state] for state in ordered if report["counts"][state]}
    width = max((len(state) for state in counts), default=5)
    lines += [f"  {state:<{width}}  {count:>7,}" for state, count in counts.items()] or ["  (no invoices listed yet)"]
    problems = report["not_verified"]
    if problems:
        lines += ["", f"{len(problems)} not verified:"]
        lines += [
            f"  {p['direction']:<8}  {p['number']:<20}  {p['format']:<3}  {p['state']:<11}  {p['error'] or 'not downloaded yet'}"
            for p in problems
        ]
    lines += ["", "complete: every listed file is verified" if report["complete"] else
              "not complete: run `fapiao download` again for these months; it fetches only what is missing"]
    return "\n".join(lines)
