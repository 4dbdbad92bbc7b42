"""Shared helpers of the reliability suite: one agent run and its exit code, the end-state audit against the
mock's truth, the CLI as a subprocess, and the fault x outcome matrix written to docs/reliability.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from agentkit import MONTH, run_job

from agent import errors
from agent.archive import LOCK_NAME, PARTIAL_MARK, QUARANTINE_FOLDER, Archive
from agent.cli import exit_for, wait_until
from agent.config import Settings
from agent.ledger import LEDGER_NAME, EntryState, Ledger, LedgerEntry
from agent.manifest import CSV_NAME, XLSX_NAME
from agent.records import Direction, FileFormat, RunSummary
from fixtures.portal.faults import FaultKind
from fixtures.pytest_plugin import MockPortal

REPO = Path(__file__).resolve().parents[2]
REPORT = REPO / "docs" / "reliability.md"
# Short waits everywhere, one verification process: the suite shares two cores with other work.
FAST: dict[str, Any] = {
    "rate_limit": 0.0, "not_ready_wait": 0.3, "backoff_max": 0.3, "workers": 1, "concurrency": 4, "timeout": 10.0,
    "pause": 0.0, "pause_jitter": 0.0,
}
# The portal's SMS resend countdown, short enough that a re-login waits it out in seconds.
QUICK_SMS = {"sms_resend_seconds": 3}
ARCHIVE_OWN_FILES = {LEDGER_NAME, f"{LEDGER_NAME}-wal", f"{LEDGER_NAME}-shm", CSV_NAME, XLSX_NAME, LOCK_NAME}
TO_DO_STATES = {EntryState.failed, EntryState.pending, EntryState.quarantined}
TruthKey = tuple[Direction, str, FileFormat]


@dataclass
class RunResult:
    exit_code: int
    summary: RunSummary | None = None
    error: str = ""


def run_agent(settings: Settings, month: str = MONTH, **request: Any) -> RunResult:
    """One job in this process, with the exit code the CLI would give it."""
    try:
        summary = run_job(settings, month, **request)
    except errors.FapiaoError as exc:
        return RunResult(exc.exit_code, None, str(exc))
    return RunResult(exit_for(summary), summary)


def truth_files(
    portal: MockPortal, company: str, formats: Iterable[FileFormat], directions: Iterable[Direction], month: str = MONTH
) -> dict[TruthKey, str | None]:
    """Every file the portal lists for the month: its sha256, or None for a paper invoice (no file)."""
    files: dict[TruthKey, str | None] = {}
    for direction in directions:
        for invoice in portal.truth(month, direction.value, company)["invoices"]:
            for fmt in formats:
                sha = invoice["sha256"][fmt.value.upper()] if invoice["has_file"] else None
                files[(direction, invoice["Fphm"], fmt)] = sha
    return files


@dataclass
class Audit:
    """The archive and its ledger held against the portal's truth; `problems` is empty when all is well."""

    problems: list[str] = field(default_factory=list)
    states: Counter[str] = field(default_factory=Counter)
    unknown: list[TruthKey] = field(default_factory=list)  # in the truth, not in the ledger
    state_of: dict[TruthKey, EntryState] = field(default_factory=dict)

    def of_state(self, state: EntryState) -> int:
        return self.states[state.value]


def audit(
    portal: MockPortal, settings: Settings, directions: Iterable[Direction] = tuple(Direction), *,
    month: str = MONTH, stopped: bool = False,
) -> Audit:
    """Each listed file is verified with the truth's sha256 or left to do with a reason; the archive holds no
    file the ledger does not vouch for. `stopped`: the run stopped early (exit 5), so untried entries may stay."""
    company = next(iter(settings.accounts.values())).company_id
    truth = truth_files(portal, company, settings.formats, directions, month)
    with Ledger.open(settings.out) as ledger:
        entries = [entry for entry in ledger.entries(company, month) if entry.direction in set(directions)]
    result = Audit()
    by_key = {(entry.direction, entry.number, entry.format): entry for entry in entries}
    for key, sha in truth.items():
        entry = by_key.get(key)
        if entry is None:
            result.unknown.append(key)
            continue
        result.states[entry.state.value] += 1
        result.state_of[key] = entry.state
        result.problems += _entry_problems(settings.out, entry, sha, stopped)
    result.problems += [f"in the ledger, not on the portal: {key}" for key in by_key.keys() - truth.keys()]
    result.problems += archive_problems(settings.out, entries)
    return result


def _entry_problems(root: Path, entry: LedgerEntry, sha: str | None, stopped: bool) -> list[str]:
    name = f"{entry.direction.value} {entry.number} {entry.format.value}"
    if sha is None:
        return [] if entry.state is EntryState.paper else [f"{name}: paper invoice in state {entry.state}"]
    if entry.state is EntryState.verified:
        if entry.sha256 != sha:
            return [f"{name}: verified with sha256 {entry.sha256}, the portal's is {sha}"]
        path = root / (entry.path or "")
        if not path.is_file() or Archive.sha256_of(path) != sha:
            return [f"{name}: verified, but its file {entry.path} is missing or differs"]
        return []
    if entry.state is EntryState.quarantined and not _is_evidence(root, entry.path):
        return [f"{name}: quarantined, but no evidence under {QUARANTINE_FOLDER}/ ({entry.path})"]
    if entry.state in TO_DO_STATES:
        return [] if entry.last_error else [f"{name}: {entry.state} without a reason"]
    if stopped and entry.state is EntryState.listed:
        return []
    return [f"{name}: left in state {entry.state}"]


def _is_evidence(root: Path, path: str | None) -> bool:
    return bool(path) and path.startswith(f"{QUARANTINE_FOLDER}/") and (root / path).is_file()


def archive_problems(root: Path, entries: Iterable[LedgerEntry]) -> list[str]:
    """Every file in the archive is a verified entry's (same sha256) or quarantined evidence; no temp files."""
    verified = {entry.path: entry.sha256 for entry in entries if entry.state is EntryState.verified}
    quarantined = {entry.path for entry in entries if entry.state is EntryState.quarantined}
    problems = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        top = relative.split("/")[0]
        if relative in ARCHIVE_OWN_FILES or top == "_debug":
            continue
        if PARTIAL_MARK in path.name:
            problems.append(f"temp file left at {relative}")
        elif top == QUARANTINE_FOLDER:
            if relative.removesuffix(".reason.txt") not in quarantined:
                problems.append(f"quarantined file no entry points at: {relative}")
        elif relative not in verified:
            problems.append(f"file at a final name that is not verified: {relative}")
        elif Archive.sha256_of(path) != verified[relative]:
            problems.append(f"file differs from its verified sha256: {relative}")
    return problems


def summary_problems(summary: RunSummary, result: Audit) -> list[str]:
    """The summary's counts and reasons agree with the ledger."""
    problems = []
    for state in (EntryState.verified, EntryState.pending, EntryState.quarantined, EntryState.paper):
        if getattr(summary, state.value) != result.of_state(state):
            problems.append(f"summary {state.value} {getattr(summary, state.value)}, ledger {result.of_state(state)}")
    to_do = sum(result.of_state(state) for state in TO_DO_STATES)
    if len(summary.not_verified) != to_do or not all(": " in line for line in summary.not_verified):
        problems.append(f"summary names {len(summary.not_verified)} files not verified, the ledger {to_do}")
    return problems


def file_requests(portal: MockPortal) -> Counter[tuple[str, str]]:
    """File requests the portal answered so far, by (number, FORMAT)."""
    counts: Counter[tuple[str, str]] = Counter()
    for number, by_format in portal.counters()["file_requests"].items():
        for fmt, count in by_format.items():
            counts[(number, fmt)] = count
    return counts


def fault_hits(portal: MockPortal, kind: str) -> set[str]:
    """Invoice numbers a fault of this kind struck at least once."""
    return {number for number, kinds in portal.counters()["faults_by_invoice"].items() if kinds.get(kind)}


@contextmanager
def on_downloads(portal: MockPortal, downloads: int | None, action: Callable[[], None]) -> Iterator[None]:
    """Runs `action` (in a thread) once the portal has sent `downloads` files, while the body runs the agent."""
    stop = threading.Event()

    def watch() -> None:
        while downloads is not None and not stop.wait(0.05):
            if portal.counters()["downloads_total"] >= downloads:
                action()
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


def expire_sessions_after(portal: MockPortal, downloads: int | None) -> Any:
    """Moves the portal's clock a minute on once `downloads` files went out, so a session that a session_expiry
    fault doomed (to die 30 s after login) dies mid-run, whatever the machine's speed."""
    return on_downloads(portal, downloads, lambda: portal.advance_clock(60))


def verified_keys(root: Path) -> set[TruthKey]:
    with Ledger.open(root) as ledger:
        return {
            (entry.direction, entry.number, entry.format)
            for entry in ledger.entries()
            if entry.state is EntryState.verified
        }


# -- the CLI as a subprocess


def cli_env(portal: MockPortal, settings: Settings, **extra: str) -> dict[str, str]:
    """FAPIAO_* variables for one account on the mock, the archive and state of `settings`."""
    account = settings.accounts["acct"]
    clean = {key: value for key, value in os.environ.items() if not key.startswith("FAPIAO_")}
    password = account.password.get_secret_value() if account.password else ""
    fields = {"company_id": account.company_id, "login": account.login, "password": password}
    env = {
        "PYTHONPATH": f"{REPO}{os.pathsep}{Path(__file__).parent}",
        "FAPIAO_PORTAL_URL": portal.url, "FAPIAO_OUT": str(settings.out), "FAPIAO_STATE_DIR": str(settings.state_dir),
        # the account named "acct", as in-process runs name it, so both share its saved session
        "FAPIAO_ACCOUNTS": json.dumps({"acct": {**fields, "sms": f"mock-outbox:{portal.url}"}}),
        "FAPIAO_INTERACTIVE": "false",
        **{f"FAPIAO_{key.upper()}": str(value) for key, value in FAST.items()},
    }
    return {**clean, **env, **extra}


def cli_command(*args: str, hook: bool = False) -> list[str]:
    """`python -m agent ...`; with `hook`, the crash hook (crashhook.py) is armed first from CRASH_AT."""
    if hook:
        program = "import crashhook, sys; crashhook.arm(); from agent.cli import main; sys.argv[0] = 'fapiao'; main()"
        return [sys.executable, "-c", program, *args]
    return [sys.executable, "-m", "agent", *args]


def run_cli(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_command(*args), env=env, capture_output=True, text=True, timeout=timeout, check=False)


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes], timeout: float = 120) -> bool:
    """Poll until `condition` holds; False if the process ended first (or the timeout passed)."""
    wait_until(lambda: condition() or process.poll() is not None, timeout, every=0.05)
    return condition()


# -- the fault x outcome matrix


MATRIX_START, MATRIX_END = "<!-- fault-matrix:start -->", "<!-- fault-matrix:end -->"
SOAK_START, SOAK_END = "<!-- soak:start -->", "<!-- soak:end -->"
MATRIX_HEADER = (
    "| fault | how it strikes | exit | files listed by the portal | verified | failed | pending | quarantined "
    "| paper | not listed yet | logins | file requests |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


MIX = "all at once"
KEY_ROTATION = "key_rotation"  # not a fault: the signing keys of realistic mode expiring mid-run
KIND_ORDER = [*get_args(FaultKind), KEY_ROTATION, MIX]


@dataclass(frozen=True)
class MatrixRow:
    kind: str  # a FaultKind, or MIX
    label: str  # the kind and, for a second row of the same kind, what differs
    setup: str
    exit_code: int
    files: int
    audit: Audit
    logins: int
    requests: int

    def markdown(self) -> str:
        a = self.audit
        failed = a.of_state(EntryState.failed) + a.of_state(EntryState.listed)
        cells = [
            f"`{self.label}`", self.setup, str(self.exit_code), str(self.files), str(a.of_state(EntryState.verified)),
            str(failed), str(a.of_state(EntryState.pending)), str(a.of_state(EntryState.quarantined)),
            str(a.of_state(EntryState.paper)), str(len(a.unknown)), str(self.logins), str(self.requests),
        ]
        return "| " + " | ".join(cells) + " |"


class Matrix:
    """Rows collected by the fault-matrix tests; written only when every fault kind and the mix passed."""

    def __init__(self) -> None:
        self.rows: dict[str, MatrixRow] = {}

    def add(self, row: MatrixRow) -> None:
        self.rows[row.label] = row

    def complete(self) -> bool:
        return set(KIND_ORDER) <= {row.kind for row in self.rows.values()}

    def write(self, path: Path = REPORT) -> None:
        rows = sorted(self.rows.values(), key=lambda row: (KIND_ORDER.index(row.kind), row.label))
        replace_section(path, MATRIX_START, MATRIX_END, "\n".join([MATRIX_HEADER, *(row.markdown() for row in rows)]))


def replace_section(path: Path, start: str, end: str, body: str) -> None:
    """Put `body` between the markers in `path`, keeping the rest of the file as it is."""
    text = path.read_text(encoding="utf-8")
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    path.write_text(f"{head}{start}\n{body}\n{end}{tail}", encoding="utf-8")
