"""What we know: every listed invoice file, its state, where it lies and its hash; and every run.

One SQLite file in the archive root (`ledger.sqlite3`, mode 0600), in WAL mode so two runs on one archive
can share it. Each change is one short `BEGIN IMMEDIATE` transaction, so a crash loses at most the change in
flight and never leaves half of one; a lock held by another run is waited for (busy timeout), then retried a
bounded number of times.

    listed ──► downloaded ──► verified          paper: a paper invoice, no electronic file exists
       │            │                           failed / pending / quarantined: still to do, with last_error
       └────────────┴──► failed | pending | quarantined

Listing an invoice again refreshes its row but never changes its state, so a verified file stays verified.
sqlite3 errors that mean the folder or disk is at fault become ArchiveError here; one Ledger per thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from agent.archive import archive_error
from agent.errors import ArchiveError
from agent.parsers.amounts import to_fen
from agent.portal import PAPER_KINDS
from agent.records import Direction, FileFormat, InvoiceRow, RunSummary

logger = logging.getLogger(__name__)

LEDGER_NAME = "ledger.sqlite3"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 10.0  # how long one statement waits for another run's lock
LOCK_ATTEMPTS = 5  # then how many times a whole transaction is tried before giving up
SECRET_KEY_WORDS = ("password", "passwd", "secret", "token", "credential", "cookie")

T = TypeVar("T")


class EntryState(StrEnum):
    listed = "listed"
    downloaded = "downloaded"  # the file is at its final name, not yet verified
    verified = "verified"
    failed = "failed"
    pending = "pending"  # the portal has no file yet
    quarantined = "quarantined"
    paper = "paper"


DONE_STATES = frozenset({EntryState.verified, EntryState.paper})


class EntryKey(BaseModel):
    """Names one invoice file: an invoice number may be both issued and received, and has several formats."""

    model_config = ConfigDict(frozen=True)

    company_id: str
    direction: Direction
    number: str
    format: FileFormat

    @classmethod
    def of(cls, company_id: str, row: InvoiceRow, fmt: FileFormat) -> EntryKey:
        return cls(company_id=company_id, direction=row.direction, number=row.number, format=fmt)


class LedgerEntry(EntryKey):
    """One row of the `invoices` table."""

    month: str  # 'YYYY-MM' of issued_at
    state: EntryState
    row: InvoiceRow
    path: str | None  # relative to the archive root, '/'-separated
    sha256: str | None
    size: int | None
    attempts: int
    last_error: str
    first_seen: datetime
    updated_at: datetime
    run_id: int | None

    @property
    def key(self) -> EntryKey:
        return EntryKey(
            company_id=self.company_id, direction=self.direction, number=self.number, format=self.format
        )


class RunRecord(BaseModel):
    """One row of the `runs` table."""

    id: int
    started_at: datetime
    finished_at: datetime | None
    args: dict[str, Any]
    summary: RunSummary | None
    exit_code: int | None


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        args TEXT NOT NULL,
        summary TEXT,
        exit_code INTEGER
    )""",
    """CREATE TABLE IF NOT EXISTS invoices (
        company_id TEXT NOT NULL,
        direction TEXT NOT NULL,
        number TEXT NOT NULL,
        format TEXT NOT NULL,
        month TEXT NOT NULL,
        issued_at TEXT NOT NULL,
        total_fen INTEGER NOT NULL,
        row TEXT NOT NULL,
        state TEXT NOT NULL,
        path TEXT,
        sha256 TEXT,
        size INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT NOT NULL DEFAULT '',
        first_seen TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        run_id INTEGER,
        PRIMARY KEY (company_id, direction, number, format)
    )""",
    "CREATE INDEX IF NOT EXISTS invoices_by_month ON invoices (company_id, month, state)",
    "CREATE INDEX IF NOT EXISTS invoices_by_path ON invoices (path)",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)

_UPSERT_LISTED = """
    INSERT INTO invoices (company_id, direction, number, format, month, issued_at, total_fen, row, state,
                          first_seen, updated_at, run_id)
    VALUES (:company_id, :direction, :number, :format, :month, :issued_at, :total_fen, :row, :state,
            :now, :now, :run_id)
    ON CONFLICT (company_id, direction, number, format) DO UPDATE SET
        month = excluded.month, issued_at = excluded.issued_at, total_fen = excluded.total_fen,
        row = excluded.row, updated_at = excluded.updated_at, run_id = excluded.run_id
"""

NUMBERS_PER_QUERY = 500  # well under SQLite's limit of bound variables per statement
_KEY_MATCH = "company_id = :company_id AND direction = :direction AND number = :number AND format = :format"

_SQLITE_FAILURES: dict[int, tuple[str, str]] = {
    sqlite3.SQLITE_FULL: ("the disk is full", "free some space or choose another output folder"),
    sqlite3.SQLITE_READONLY: (
        "the ledger is read-only",
        "make the folder and its ledger writable for this user",
    ),
    sqlite3.SQLITE_PERM: ("permission denied", "make the folder and its ledger writable for this user"),
    sqlite3.SQLITE_CANTOPEN: (
        "the ledger cannot be opened",
        "make the folder writable or choose another one",
    ),
    sqlite3.SQLITE_IOERR: ("a disk read or write failed", "check the disk, then run again"),
    sqlite3.SQLITE_BUSY: ("another run keeps the ledger locked", "let the other run finish, then run again"),
    sqlite3.SQLITE_LOCKED: (
        "another run keeps the ledger locked",
        "let the other run finish, then run again",
    ),
    sqlite3.SQLITE_CORRUPT: (
        "the ledger is damaged",
        f"move {LEDGER_NAME} aside and run again to rebuild it",
    ),
    sqlite3.SQLITE_NOTADB: ("the ledger is not a SQLite file", f"move {LEDGER_NAME} aside and run again"),
}


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF  # extended codes carry the primary one in the low byte


def _is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.Error) and _primary_code(exc) in (
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
    )


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def without_secrets(args: Mapping[str, Any]) -> dict[str, Any]:
    """`args` minus every key that names a secret, at any depth."""
    return {
        key: without_secrets(value) if isinstance(value, Mapping) else value
        for key, value in args.items()
        if not any(word in str(key).lower() for word in SECRET_KEY_WORDS)
    }


def _create_private(path: Path) -> None:
    """Create the ledger file 0600 before SQLite does: SQLite gives its -wal and -shm files the same mode."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for existing in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if existing.exists() and stat.S_IMODE(existing.stat().st_mode) & 0o077:
            existing.chmod(0o600)  # made by an older version or another tool


def _numbers_of(keys: set[EntryKey]) -> Iterator[tuple[list[str], list[object]]]:
    """WHERE clauses, with their parameters, selecting the invoice numbers of `keys` a few hundred at a time
    (a superset of the keys: the caller keeps those it asked for)."""
    numbers_by_company: dict[str, set[str]] = {}
    for key in keys:
        numbers_by_company.setdefault(key.company_id, set()).add(key.number)
    for company_id, numbers in numbers_by_company.items():
        ordered = sorted(numbers)
        for start in range(0, len(ordered), NUMBERS_PER_QUERY):
            chunk = ordered[start : start + NUMBERS_PER_QUERY]
            yield ["company_id = ?", f"number IN ({_sql_list(chunk)})"], [company_id, *chunk]


def _sql_list(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values))


def _key_params(key: EntryKey) -> dict[str, Any]:
    """Only the key's own fields, also when a whole LedgerEntry is passed as the key."""
    return key.model_dump(mode="json", include=set(EntryKey.model_fields))


def _entry(record: sqlite3.Row) -> LedgerEntry:
    fields = dict(record)
    fields["row"] = InvoiceRow.model_validate_json(fields["row"])
    return LedgerEntry.model_validate(fields)


def _run(record: sqlite3.Row) -> RunRecord:
    fields = dict(record)
    fields["args"] = json.loads(fields["args"])
    if fields["summary"] is not None:
        fields["summary"] = RunSummary.model_validate_json(fields["summary"])
    return RunRecord.model_validate(fields)


class Ledger:
    """The archive's SQLite ledger. Open with `Ledger.open(root)`, use as a context manager."""

    def __init__(self, connection: sqlite3.Connection, root: Path) -> None:
        self._connection = connection
        self.root = root

    # -- opening and closing

    @classmethod
    def open(cls, root: Path) -> Ledger:
        root = root.resolve()
        path = root / LEDGER_NAME
        try:
            root.mkdir(parents=True, exist_ok=True)
            _create_private(path)
        except OSError as exc:
            raise archive_error(exc, root) from exc
        with _translated(root):
            # isolation_level=None: we issue BEGIN IMMEDIATE/COMMIT ourselves. timeout = SQLite busy_timeout
            connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        ledger = cls(connection, root)
        try:
            ledger._prepare()
        except BaseException:
            connection.close()
            raise
        return ledger

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _prepare(self) -> None:
        self._connection.row_factory = sqlite3.Row
        self._retrying(self._set_pragmas)
        version = self._read("PRAGMA user_version")[0][0]
        if version > SCHEMA_VERSION:
            raise ArchiveError(
                f"the ledger in {self.root} was written by a newer fapiao-agent; upgrade it first"
            )
        if version < SCHEMA_VERSION:
            self._write(lambda connection: [connection.execute(statement) for statement in _SCHEMA])

    def _set_pragmas(self) -> None:
        self._connection.execute("PRAGMA journal_mode = WAL")
        # WAL + NORMAL: a commit survives the process being killed; a power cut may lose the last commits,
        # which only means the next run checks those files again (their hashes are compared before skipping).
        self._connection.execute("PRAGMA synchronous = NORMAL")

    # -- runs

    def start_run(self, args: Mapping[str, Any]) -> int:
        """Record a run starting, with its command arguments minus any secret; returns its id."""
        arguments = json.dumps(without_secrets(args), ensure_ascii=False, default=str)
        sql = "INSERT INTO runs (started_at, args) VALUES (?, ?)"
        run_id = self._write(lambda connection: connection.execute(sql, (_now(), arguments)).lastrowid)
        assert run_id is not None  # an INSERT always sets it
        return run_id

    def finish_run(self, run_id: int, summary: RunSummary, exit_code: int) -> None:
        sql = "UPDATE runs SET finished_at = ?, summary = ?, exit_code = ? WHERE id = ?"
        params = (_now(), summary.model_dump_json(), exit_code, run_id)
        self._write(lambda connection: connection.execute(sql, params))

    def get_run(self, run_id: int) -> RunRecord | None:
        records = self._read("SELECT * FROM runs WHERE id = ?", (run_id,))
        return _run(records[0]) if records else None

    # -- invoices: writing

    def record_listed(
        self, run_id: int, company_id: str, rows: Sequence[InvoiceRow], formats: Sequence[FileFormat]
    ) -> None:
        """Upsert one entry per row and format; a new paper invoice is `paper`, any other `listed`."""
        now = _now()
        params = [self._listed_params(run_id, company_id, row, fmt, now) for row in rows for fmt in formats]
        self._write(lambda connection: connection.executemany(_UPSERT_LISTED, params))

    @staticmethod
    def _listed_params(
        run_id: int, company_id: str, row: InvoiceRow, fmt: FileFormat, now: str
    ) -> dict[str, Any]:
        state = EntryState.paper if row.kind in PAPER_KINDS else EntryState.listed
        return {
            **_key_params(EntryKey.of(company_id, row, fmt)),
            "month": f"{row.issued_at:%Y-%m}",
            "issued_at": row.issued_at.isoformat(),
            "total_fen": int(to_fen(row.total) * 100),
            "row": row.model_dump_json(),
            "state": state.value,
            "now": now,
            "run_id": run_id,
        }

    def mark_downloaded(self, run_id: int, key: EntryKey, path: Path, sha256: str, size: int) -> None:
        self._set_state(
            run_id, key, EntryState.downloaded, path=self._relative(path), sha256=sha256, size=size
        )

    def mark_verified(self, run_id: int, key: EntryKey, path: Path, sha256: str, size: int) -> None:
        columns = {"path": self._relative(path), "sha256": sha256, "size": size, "last_error": ""}
        self._set_state(run_id, key, EntryState.verified, **columns)

    def mark_failed(self, run_id: int, key: EntryKey, error: str) -> None:
        self._set_state(run_id, key, EntryState.failed, last_error=error)

    def mark_pending(self, run_id: int, key: EntryKey, error: str) -> None:
        self._set_state(run_id, key, EntryState.pending, last_error=error)

    def mark_quarantined(self, run_id: int, key: EntryKey, path: Path, error: str) -> None:
        columns = {"path": self._relative(path), "sha256": None, "size": None, "last_error": error}
        self._set_state(run_id, key, EntryState.quarantined, **columns)

    def bump_attempts(self, key: EntryKey) -> int:
        """Count one more download attempt; returns the new count."""
        params = _key_params(key)

        def bump(connection: sqlite3.Connection) -> int:
            connection.execute(f"UPDATE invoices SET attempts = attempts + 1 WHERE {_KEY_MATCH}", params)
            found = connection.execute(f"SELECT attempts FROM invoices WHERE {_KEY_MATCH}", params).fetchone()
            if found is None:
                raise LookupError(f"not in the ledger: {key}")
            return int(found[0])

        return self._write(bump)

    def _set_state(self, run_id: int, key: EntryKey, state: EntryState, **columns: object) -> None:
        assignments = "".join(f", {column} = :{column}" for column in columns)
        changes = f"state = :state, updated_at = :now, run_id = :run_id{assignments}"
        sql = f"UPDATE invoices SET {changes} WHERE {_KEY_MATCH}"
        params = {**_key_params(key), **columns, "state": state.value, "now": _now(), "run_id": run_id}
        if self._write(lambda connection: connection.execute(sql, params).rowcount) == 0:
            raise LookupError(f"not in the ledger: {key}")

    def _relative(self, path: Path) -> str:
        """`path` as stored: relative to the root, '/'-separated. ValueError when it lies outside the root."""
        absolute = Path(os.path.normpath(path if path.is_absolute() else self.root / path))
        if not absolute.is_relative_to(self.root):
            absolute = absolute.resolve()  # the root reached through a symbolic link
        return absolute.relative_to(self.root).as_posix()

    # -- invoices: reading

    def get(self, key: EntryKey) -> LedgerEntry | None:
        records = self._read(f"SELECT * FROM invoices WHERE {_KEY_MATCH}", _key_params(key))
        return _entry(records[0]) if records else None

    def get_many(self, keys: Iterable[EntryKey]) -> list[LedgerEntry]:
        """The entries of those keys that exist, read a few hundred invoice numbers per query."""
        wanted = set(keys)
        found = [entry for where, params in _numbers_of(wanted) for entry in self._select_entries(where, params)]
        return [entry for entry in found if entry.key in wanted]

    def states_of(self, keys: Iterable[EntryKey]) -> dict[EntryKey, EntryState]:
        """The state of each of those keys that exists: get_many without reading the rows, for counting."""
        wanted, states = set(keys), {}
        for where, params in _numbers_of(wanted):
            for record in self._read(f"SELECT company_id, direction, number, format, state FROM invoices {_where_sql(where)}", params):
                key = EntryKey(company_id=record[0], direction=record[1], number=record[2], format=record[3])
                if key in wanted:
                    states[key] = EntryState(record[4])
        return states

    def to_do(
        self,
        company_id: str,
        formats: Sequence[FileFormat],
        *,
        month: str | None = None,
        direction: Direction | None = None,
        numbers: Sequence[str] | None = None,
    ) -> list[LedgerEntry]:
        """Entries neither verified nor paper, oldest first; optionally of one month, direction, numbers."""
        where, params = _equal(company_id=company_id, month=month, direction=direction)
        where += [f"format IN ({_sql_list(formats)})", f"state NOT IN ({_sql_list(list(DONE_STATES))})"]
        params += [*formats, *DONE_STATES]
        if numbers is not None:
            where.append(f"number IN ({_sql_list(numbers)})")
            params += numbers
        return self._select_entries(where, params)

    def entries(self, company_id: str | None = None, month: str | None = None) -> Iterator[LedgerEntry]:
        where, params = _equal(company_id=company_id, month=month)
        return iter(self._select_entries(where, params))

    def counts(self, company_id: str | None = None, month: str | None = None) -> dict[EntryState, int]:
        """How many entries are in each state (every state present, zero included)."""
        where, params = _equal(company_id=company_id, month=month)
        sql = f"SELECT state, COUNT(*) FROM invoices {_where_sql(where)} GROUP BY state"
        found = {EntryState(state): count for state, count in self._read(sql, params)}
        return {state: found.get(state, 0) for state in EntryState}

    def find_by_path(self, path: Path) -> LedgerEntry | None:
        """The entry whose file is at `path` (absolute, or relative to the root), if any."""
        try:
            relative = self._relative(path)
        except ValueError:
            return None  # outside the archive: no entry can point there
        records = self._read("SELECT * FROM invoices WHERE path = ? ORDER BY updated_at DESC", (relative,))
        return _entry(records[0]) if records else None

    def _select_entries(self, where: list[str], params: Sequence[object]) -> list[LedgerEntry]:
        order = "ORDER BY company_id, issued_at, number, direction, format"
        return [
            _entry(record)
            for record in self._read(f"SELECT * FROM invoices {_where_sql(where)} {order}", params)
        ]

    # -- transactions

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in one short write transaction, retried whole while another run holds the lock."""
        return self._retrying(lambda: self._transaction(work))

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        self._connection.execute("BEGIN IMMEDIATE")  # take the write lock now, not half-way through
        try:
            result = work(self._connection)
            self._connection.execute("COMMIT")
        except BaseException:
            if self._connection.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # the first error is the one to report
                    self._connection.execute("ROLLBACK")
            raise
        return result

    def _read(self, sql: str, params: Sequence[object] | Mapping[str, object] = ()) -> list[sqlite3.Row]:
        return self._retrying(lambda: self._connection.execute(sql, params).fetchall())

    def _retrying(self, action: Callable[[], T]) -> T:
        retrying = Retrying(
            retry=retry_if_exception(_is_busy),
            stop=stop_after_attempt(LOCK_ATTEMPTS),
            wait=wait_random_exponential(multiplier=0.05, max=2),
            before_sleep=before_sleep_log(logger, logging.WARNING),
            reraise=True,
        )
        with _translated(self.root):
            return retrying(action)


def _equal(**columns: object) -> tuple[list[str], list[object]]:
    """WHERE conditions `column = ?` for each given value; None means no condition."""
    present = {column: value for column, value in columns.items() if value is not None}
    return [f"{column} = ?" for column in present], list(present.values())


def _where_sql(conditions: list[str]) -> str:
    return f"WHERE {' AND '.join(conditions)}" if conditions else ""


@contextlib.contextmanager
def _translated(root: Path) -> Iterator[None]:
    """sqlite3 errors that mean the folder or disk is at fault -> ArchiveError; any other is a bug: kept."""
    try:
        yield
    except sqlite3.Error as exc:
        failure = _SQLITE_FAILURES.get(_primary_code(exc) or 0)
        if failure is None:
            raise
        what, fix = failure
        raise ArchiveError(f"cannot use the ledger in {root}: {what} ({exc}); {fix}") from exc
