"""What we know: every listed invoice file, its state, where it lies and its hash; and every run.

By default one SQLite file in the archive root (`ledger.sqlite3`, mode 0600), in WAL mode so several runs and
workers on one machine can share it; with `database_url = "postgresql+psycopg://..."` a PostgreSQL database,
shared by workers on several machines (the archive folder is then a shared mount: paths are stored relative to
it, so each machine may mount it where it likes). One database per archive.

Why SQLAlchemy Core (2.x) with psycopg 3: one schema (`MetaData` + `Table`s below) and one set of queries serve
both engines, with the few differences (upsert, BEGIN IMMEDIATE, lock timeouts, error codes) said in one place;
bulk statements stay bulk (executemany, `INSERT ... ON CONFLICT` from each dialect's `insert`), and statements
are compiled once and cached. No ORM: the ledger is a handful of set-wise statements over two tables, and the
records it returns are the pydantic models below, not mapped objects.

Each change is one short transaction (SQLite: `BEGIN IMMEDIATE`, so the write lock is taken at once; PostgreSQL:
row locks in key order), so a crash loses at most the change in flight and never leaves half of one; a lock held
by another process is waited for (SQLite busy timeout, PostgreSQL lock_timeout), then the whole transaction is
retried a bounded number of times.

    listed ──► downloaded ──► verified          paper: a paper invoice, no electronic file exists
       │            │                           failed / pending / quarantined: still to do, with last_error
       └────────────┴──► failed | pending | quarantined

Listing an invoice again refreshes its row but never changes its state, so a verified file stays verified.
Database errors that mean the folder, disk or server is at fault become ArchiveError here. A Ledger may be used
from several threads (each statement borrows a pooled connection).
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
from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    Select,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from agent.archive import archive_error
from agent.errors import ArchiveError, SettingsError
from agent.parsers.amounts import to_fen
from agent.portal import PAPER_KINDS
from agent.records import Direction, FileFormat, InvoiceRow, RunSummary

logger = logging.getLogger(__name__)

LEDGER_NAME = "ledger.sqlite3"
SCHEMA_VERSION = 2  # 2: invoices have an id (the status page serves files by it)
BUSY_TIMEOUT_SECONDS = 10.0  # how long one statement waits for another process's lock
LOCK_ATTEMPTS = 5  # then how many times a whole transaction is tried before giving up
CONNECT_TIMEOUT_SECONDS = 10
SECRET_KEY_WORDS = ("password", "passwd", "secret", "token", "credential", "cookie")
NUMBERS_PER_QUERY = 500  # well under SQLite's limit of bound variables per statement

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


class StateChange(BaseModel):
    """A file's new state and the columns that go with it, for `Ledger.apply`."""

    model_config = ConfigDict(frozen=True)

    key: EntryKey
    state: EntryState
    columns: dict[str, Any]


class LedgerEntry(EntryKey):
    """One row of the `invoices` table."""

    id: int  # stable: what the status page names a file by
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


class CompanyMonth(BaseModel):
    """One company's month as the ledger holds it: how many files in each state, and its last run."""

    company_id: str
    month: str  # 'YYYY-MM'
    listed: int  # every file listed (one per invoice and format)
    verified: int
    pending: int
    failed: int
    quarantined: int
    paper: int
    untried: int  # listed, no outcome yet: a run still at work on it, or one that stopped early
    last_run_id: int | None  # the last run that listed the month or changed one of its files
    last_run_at: datetime | None  # when that run started

    @property
    def complete(self) -> bool:
        return self.verified + self.paper == self.listed


# -- the schema: one for both engines. Times are ISO 8601 text (offset included), amounts integer fen.

METADATA = MetaData()
_TEXT = Text().with_variant(Text(collation="C"), "postgresql")  # compare and sort bytewise, as SQLite does
_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite: INTEGER PRIMARY KEY is the rowid

RUNS = Table(
    "runs",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("started_at", _TEXT, nullable=False),
    Column("finished_at", _TEXT),
    Column("args", _TEXT, nullable=False),
    Column("summary", _TEXT),
    Column("exit_code", Integer),
    sqlite_autoincrement=True,
)
INVOICES = Table(
    "invoices",
    METADATA,
    Column("id", _ID, primary_key=True),
    Column("company_id", _TEXT, nullable=False),
    Column("direction", _TEXT, nullable=False),
    Column("number", _TEXT, nullable=False),
    Column("format", _TEXT, nullable=False),
    Column("month", _TEXT, nullable=False),
    Column("issued_at", _TEXT, nullable=False),
    Column("total_fen", BigInteger, nullable=False),
    Column("row", _TEXT, nullable=False),
    Column("state", _TEXT, nullable=False),
    Column("path", _TEXT),
    Column("sha256", _TEXT),
    Column("size", BigInteger),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", _TEXT, nullable=False, server_default=""),
    Column("first_seen", _TEXT, nullable=False),
    Column("updated_at", _TEXT, nullable=False),
    Column("run_id", Integer),
    UniqueConstraint("company_id", "direction", "number", "format", name="invoices_key"),
    Index("invoices_by_month", "company_id", "month", "state"),
    Index("invoices_by_path", "path"),
    sqlite_autoincrement=True,
)
META = Table(  # the schema version (SQLite also keeps it in PRAGMA user_version, which older versions read)
    "ledger_meta",
    METADATA,
    Column("name", _TEXT, primary_key=True),
    Column("value", _TEXT, nullable=False),
)

KEY_COLUMNS = ("company_id", "direction", "number", "format")
LISTED_COLUMNS = (*KEY_COLUMNS, "month", "issued_at", "total_fen", "row", "state", "first_seen", "updated_at", "run_id")
REFRESHED_ON_LISTING = ("month", "issued_at", "total_fen", "row", "updated_at", "run_id")
_KEY_MATCH = and_(*(INVOICES.c[column] == bindparam(f"key_{column}") for column in KEY_COLUMNS))
_NUMBERS_MATCH = and_(
    INVOICES.c.company_id == bindparam("company"),
    INVOICES.c.direction == bindparam("direction"),
    INVOICES.c.number.in_(bindparam("numbers", expanding=True)),
)
_ENTRY_ORDER = (INVOICES.c.company_id, INVOICES.c.issued_at, INVOICES.c.number, INVOICES.c.direction, INVOICES.c.format)
_V1_COLUMNS = [column.name for column in INVOICES.columns if column.name != "id"]
_PG_SCHEMA_LOCK = 0x66617069616F  # advisory lock taken while creating the tables ('fapiao')

# -- what a database error means, and what to do about it

_LOCKED = ("another run keeps the ledger locked", "let the other run finish, then run again")
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
    sqlite3.SQLITE_BUSY: _LOCKED,
    sqlite3.SQLITE_LOCKED: _LOCKED,
    sqlite3.SQLITE_CORRUPT: (
        "the ledger is damaged",
        f"move {LEDGER_NAME} aside and run again to rebuild it",
    ),
    sqlite3.SQLITE_NOTADB: ("the ledger is not a SQLite file", f"move {LEDGER_NAME} aside and run again"),
}
_PG_BUSY = frozenset({"40001", "40P01", "55P03"})  # serialization failure, deadlock, lock_timeout
_PG_UNREACHABLE = (  # psycopg says which: refused, no such host, password, no such database
    "cannot connect to the database",
    "check database_url (host, port, user, password, database) and that PostgreSQL is running",
)
_PG_FAILURES: dict[str, tuple[str, str]] = {
    "53100": ("the database server's disk is full", "free some space on the database server"),
    "53200": ("the database server is out of memory", "check the database server, then run again"),
    "42501": ("permission denied", "grant the database_url's role rights on that database"),
    **dict.fromkeys(_PG_BUSY, _LOCKED),
}


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF  # extended codes carry the primary one in the low byte


def _sqlstate(exc: object) -> str | None:
    return getattr(exc, "sqlstate", None)  # psycopg's errors carry it; sqlite3's do not


def _is_busy(exc: BaseException) -> bool:
    """A lock held by someone else, or a PostgreSQL connection lost mid-way: worth trying the whole work again."""
    if not isinstance(exc, DBAPIError):
        return False
    original = exc.orig
    if isinstance(original, sqlite3.Error):
        return _primary_code(original) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    state = _sqlstate(original) or ""
    return exc.connection_invalidated or state in _PG_BUSY or state.startswith(("08", "57P"))


def _failure(exc: DBAPIError) -> tuple[str, str] | None:
    """(what happened, the fix) for errors that are the folder's, disk's or server's fault; None for a bug."""
    original = exc.orig
    if isinstance(original, sqlite3.Error):
        return _SQLITE_FAILURES.get(_primary_code(original) or 0)
    state = _sqlstate(original) or ""
    if state in _PG_FAILURES:
        return _PG_FAILURES[state]
    if state.startswith(("08", "57P")) or (not state and isinstance(exc, OperationalError)):
        return _PG_UNREACHABLE  # without SQLSTATE: no session yet (refused, unknown host, password) or lost
    return None


# -- small helpers


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def without_secrets(args: Mapping[str, Any]) -> dict[str, Any]:
    """`args` minus every key that could name a secret, at any depth."""
    return {
        key: without_secrets(value) if isinstance(value, Mapping) else value
        for key, value in args.items()
        if not any(word in str(key).lower() for word in SECRET_KEY_WORDS)
    }


def _create_private(path: Path) -> None:
    """Create the ledger file 0600 before SQLite does: SQLite gives its -wal and -shm files the same mode.

    An existing file is never opened here: closing any descriptor of a file drops every POSIX lock this process
    holds on it, so a worker whose other task has the ledger open would lose that connection's locks, and
    another process would take itself for the last one and fold the WAL away under it (a malformed ledger)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    for existing in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if existing.exists() and stat.S_IMODE(existing.stat().st_mode) & 0o077:
            existing.chmod(0o600)  # made by an older version or another tool


def _numbers_of(keys: set[EntryKey]) -> Iterator[dict[str, Any]]:
    """Values for `_NUMBERS_MATCH` selecting the invoice numbers of `keys` a few hundred at a time, by company and
    direction so that the key's index finds them (a superset of the keys: the caller keeps those it asked for)."""
    numbers_of: dict[tuple[str, str], set[str]] = {}
    for key in keys:
        numbers_of.setdefault((key.company_id, key.direction.value), set()).add(key.number)
    for (company_id, direction), numbers in numbers_of.items():
        ordered = sorted(numbers)
        for start in range(0, len(ordered), NUMBERS_PER_QUERY):
            chunk = ordered[start : start + NUMBERS_PER_QUERY]
            yield {"company": company_id, "direction": direction, "numbers": chunk}


def _key_params(key: EntryKey) -> dict[str, Any]:
    """The values for `_KEY_MATCH`: only the key's own fields, also when a whole LedgerEntry is passed."""
    return {f"key_{column}": value for column, value in key.model_dump(mode="json", include=set(KEY_COLUMNS)).items()}


def _equal(**columns: object) -> list[ColumnElement[bool]]:
    """`column = value` for each given value (enums by value, as stored); None means no condition."""
    return [INVOICES.c[column] == str(value) for column, value in columns.items() if value is not None]


def _entry(fields: dict[str, Any]) -> LedgerEntry:
    fields["row"] = InvoiceRow.model_validate_json(fields["row"])
    return LedgerEntry.model_validate(fields)


def _run(fields: dict[str, Any]) -> RunRecord:
    fields["args"] = json.loads(fields["args"])
    if fields["summary"] is not None:
        fields["summary"] = RunSummary.model_validate_json(fields["summary"])
    return RunRecord.model_validate(fields)


def _listed_params(run_id: int, company_id: str, row: InvoiceRow, fmt: FileFormat, now: str) -> dict[str, Any]:
    state = EntryState.paper if row.kind in PAPER_KINDS else EntryState.listed
    return {
        "company_id": company_id,
        "direction": row.direction.value,
        "number": row.number,
        "format": fmt.value,
        "month": f"{row.issued_at:%Y-%m}",
        "issued_at": row.issued_at.isoformat(),
        "total_fen": int(to_fen(row.total) * 100),
        "row": row.model_dump_json(),
        "state": state.value,
        "first_seen": now,
        "updated_at": now,
        "run_id": run_id,
    }


def _upsert_listed(dialect: Dialect) -> str:
    """INSERT one listed entry, or refresh its listing fields (never its state) when it exists: compiled once
    to the driver's SQL, so that executemany hands the rows' dicts straight to the driver (binding them through
    SQLAlchemy cost a third of record_listed)."""
    statement = (postgresql.insert if dialect.name == "postgresql" else sqlite.insert)(INVOICES).inline()
    refreshed = {column: statement.excluded[column] for column in REFRESHED_ON_LISTING}
    upsert = statement.on_conflict_do_update(index_elements=list(KEY_COLUMNS), set_=refreshed)
    return str(upsert.compile(dialect=dialect, column_keys=list(LISTED_COLUMNS)))


def _company_months_query() -> Select[Any]:
    state = INVOICES.c.state
    counted = [func.count().filter(state == name).label(name) for name in ("verified", "pending", "failed", "quarantined", "paper")]
    grouped = (
        select(
            INVOICES.c.company_id,
            INVOICES.c.month,
            func.count().label("listed"),
            *counted,
            func.count().filter(state.in_([EntryState.listed.value, EntryState.downloaded.value])).label("untried"),
            func.max(INVOICES.c.run_id).label("last_run_id"),
        )
        .group_by(INVOICES.c.company_id, INVOICES.c.month)
        .subquery()
    )
    return (
        select(grouped, RUNS.c.started_at.label("last_run_at"))
        .select_from(grouped.outerjoin(RUNS, RUNS.c.id == grouped.c.last_run_id))
        .order_by(grouped.c.company_id, grouped.c.month)
    )


# -- engines


def database_location(database_url: str) -> URL:
    """A PostgreSQL URL with the psycopg 3 driver; SettingsError for anything else."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        url = None
    if url is None or url.get_backend_name() not in ("postgresql", "postgres"):
        raise SettingsError("database_url must be a PostgreSQL URL: postgresql+psycopg://USER:PASSWORD@HOST/DATABASE")
    return url.set(drivername="postgresql+psycopg")


def _sqlite_engine(path: Path) -> Engine:
    engine = create_engine(  # named parameters: the driver takes the same dicts as psycopg (record_listed)
        f"sqlite:///{path}", connect_args={"timeout": BUSY_TIMEOUT_SECONDS}, paramstyle="named"
    )

    @event.listens_for(engine, "connect")
    def prepare(connection: sqlite3.Connection, record: object) -> None:
        connection.isolation_level = None  # we say BEGIN ourselves (below), sqlite3 must not
        connection.execute("PRAGMA journal_mode = WAL")
        # WAL + NORMAL: a commit survives the process being killed; a power cut may lose the last commits,
        # which only means the next run checks those files again (their hashes are compared before skipping).
        connection.execute("PRAGMA synchronous = NORMAL")

    @event.listens_for(engine, "begin")
    def begin(connection: Connection) -> None:
        writing = connection.get_execution_options().get("fapiao_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")  # writers lock at once

    return engine


def _postgresql_engine(url: URL) -> Engine:
    """Each statement waits BUSY_TIMEOUT_SECONDS at most for a lock (any `options` of the URL are kept)."""
    options = [url.query.get("options"), f"-c lock_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}"]
    connect_args = {
        "options": " ".join(str(option) for option in options if option),
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "application_name": "fapiao-agent",  # what pg_stat_activity shows
    }
    return create_engine(url.difference_update_query(["options"]), connect_args=connect_args, pool_pre_ping=True)


class Ledger:
    """The archive's ledger. Open with `Ledger.open(root)` (or `Ledger.open(root, database_url)`), use as a
    context manager."""

    def __init__(self, engine: Engine, root: Path, where: str) -> None:
        self._engine = engine
        self._writer = engine.execution_options(fapiao_write=True)
        self._upsert = _upsert_listed(engine.dialect)
        self.root = root
        self.where = where  # for messages: "in <folder>" or "at <url without password>"

    # -- opening and closing

    @classmethod
    def open(cls, root: Path, database_url: str | None = None) -> Ledger:
        """The SQLite ledger in `root`, or the PostgreSQL one at `database_url`; tables created if missing."""
        root = root.resolve()
        url = None if database_url is None else database_location(database_url)
        try:
            root.mkdir(parents=True, exist_ok=True)
            if url is None:
                _create_private(root / LEDGER_NAME)
        except OSError as exc:
            raise archive_error(exc, root) from exc
        if url is None:
            ledger = cls(_sqlite_engine(root / LEDGER_NAME), root, f"in {root}")
        else:
            ledger = cls(_postgresql_engine(url), root, f"at {url.render_as_string(hide_password=True)}")
        try:
            ledger._prepare()
        except BaseException:
            ledger.close()
            raise
        return ledger

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name  # 'sqlite' | 'postgresql'

    def _prepare(self) -> None:
        version = self._read(_stored_version)
        if version > SCHEMA_VERSION:
            raise ArchiveError(f"the ledger {self.where} was written by a newer fapiao-agent; upgrade it first")
        if version < SCHEMA_VERSION:
            self._write(_create_schema)

    # -- runs

    def start_run(self, args: Mapping[str, Any]) -> int:
        """Record a run starting, with its command arguments minus any secret; returns its id."""
        arguments = json.dumps(without_secrets(args), ensure_ascii=False, default=str)
        statement = RUNS.insert().values(started_at=_now(), args=arguments).returning(RUNS.c.id)
        return int(self._write(lambda connection: connection.execute(statement).scalar_one()))

    def finish_run(self, run_id: int, summary: RunSummary, exit_code: int) -> None:
        values = {"finished_at": _now(), "summary": summary.model_dump_json(), "exit_code": exit_code}
        statement = update(RUNS).where(RUNS.c.id == run_id).values(**values)
        self._write(lambda connection: connection.execute(statement))

    def get_run(self, run_id: int) -> RunRecord | None:
        records = self._mappings(select(RUNS).where(RUNS.c.id == run_id))
        return _run(records[0]) if records else None

    # -- invoices: writing

    def record_listed(
        self, run_id: int, company_id: str, rows: Sequence[InvoiceRow], formats: Sequence[FileFormat]
    ) -> None:
        """Upsert one entry per row and format; a new paper invoice is `paper`, any other `listed`."""
        now = _now()
        by_key = {
            (row.direction, row.number, fmt): _listed_params(run_id, company_id, row, fmt, now)
            for row in rows
            for fmt in formats
        }  # the last listing of a key wins; key order = the same lock order in every process (PostgreSQL)
        params = [by_key[key] for key in sorted(by_key)]
        if params:
            self._write(lambda connection: connection.exec_driver_sql(self._upsert, params))

    def mark_downloaded(self, run_id: int, key: EntryKey, path: Path, sha256: str, size: int) -> None:
        columns = {"path": self._relative(path), "sha256": sha256, "size": size}
        self.apply(run_id, [StateChange(key=key, state=EntryState.downloaded, columns=columns)])

    def mark_verified(self, run_id: int, key: EntryKey, path: Path, sha256: str, size: int) -> None:
        self.apply(run_id, [self.verified(key, path, sha256, size)])

    def mark_failed(self, run_id: int, key: EntryKey, error: str) -> None:
        self.apply(run_id, [self.failed(key, error)])

    def mark_pending(self, run_id: int, key: EntryKey, error: str) -> None:
        self.apply(run_id, [self.pending(key, error)])

    def mark_quarantined(self, run_id: int, key: EntryKey, path: Path, error: str) -> None:
        self.apply(run_id, [self.quarantined(key, path, error)])

    def verified(self, key: EntryKey, path: Path, sha256: str, size: int) -> StateChange:
        columns = {"path": self._relative(path), "sha256": sha256, "size": size, "last_error": ""}
        return StateChange(key=key, state=EntryState.verified, columns=columns)

    def failed(self, key: EntryKey, error: str) -> StateChange:
        return StateChange(key=key, state=EntryState.failed, columns={"last_error": error})

    def pending(self, key: EntryKey, error: str) -> StateChange:
        return StateChange(key=key, state=EntryState.pending, columns={"last_error": error})

    def quarantined(self, key: EntryKey, path: Path, error: str) -> StateChange:
        columns = {"path": self._relative(path), "sha256": None, "size": None, "last_error": error}
        return StateChange(key=key, state=EntryState.quarantined, columns=columns)

    def apply(self, run_id: int, changes: Sequence[StateChange]) -> None:
        """Write state changes in one transaction: one UPDATE per kind of change, run for all its entries (a
        transaction per file cost the event loop a sixth of a 2,000-file run)."""
        now = _now()
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for change in changes:
            values = {**change.columns, "state": change.state.value, "updated_at": now, "run_id": run_id}
            params = {**_key_params(change.key), **{f"new_{column}": value for column, value in values.items()}}
            by_columns.setdefault(tuple(sorted(values)), []).append(params)
        if not by_columns:
            return
        missing = str(changes[0].key) if len(changes) == 1 else "some of the entries"

        def write(connection: Connection) -> None:
            for columns, params in by_columns.items():
                statement = update(INVOICES).where(_KEY_MATCH).values({c: bindparam(f"new_{c}") for c in columns})
                changed = connection.execute(statement, params).rowcount
                if (len(params) == 1 or connection.dialect.supports_sane_multi_rowcount) and changed != len(params):
                    raise LookupError(f"not in the ledger: {missing}")

        self._write(write)

    def bump_attempts(self, key: EntryKey) -> int:
        """Count one more download attempt; returns the new count."""
        statement = (
            update(INVOICES).where(_KEY_MATCH).values(attempts=INVOICES.c.attempts + 1).returning(INVOICES.c.attempts)
        )
        found = self._write(lambda connection: connection.execute(statement, _key_params(key)).scalar_one_or_none())
        if found is None:
            raise LookupError(f"not in the ledger: {key}")
        return int(found)

    def _relative(self, path: Path) -> str:
        """`path` as stored: relative to the root, '/'-separated. ValueError when it lies outside the root."""
        absolute = Path(os.path.normpath(path if path.is_absolute() else self.root / path))
        if not absolute.is_relative_to(self.root):
            absolute = absolute.resolve()  # the root reached through a symbolic link
        return absolute.relative_to(self.root).as_posix()

    # -- invoices: reading

    def get(self, key: EntryKey) -> LedgerEntry | None:
        records = self._mappings(select(INVOICES).where(_KEY_MATCH), _key_params(key))
        return _entry(records[0]) if records else None

    def entry(self, entry_id: int) -> LedgerEntry | None:
        """The entry with this id (LedgerEntry.id), if any."""
        records = self._mappings(select(INVOICES).where(INVOICES.c.id == entry_id))
        return _entry(records[0]) if records else None

    def get_many(self, keys: Iterable[EntryKey]) -> list[LedgerEntry]:
        """The entries of those keys that exist, read a few hundred invoice numbers per query."""
        wanted = set(keys)
        statement = select(INVOICES).where(_NUMBERS_MATCH).order_by(*_ENTRY_ORDER)
        found = [_entry(record) for params in _numbers_of(wanted) for record in self._mappings(statement, params)]
        return [entry for entry in found if entry.key in wanted]

    def states_of(self, keys: Iterable[EntryKey]) -> dict[EntryKey, EntryState]:
        """The state of each of those keys that exists: get_many without reading the rows, for counting."""
        wanted, states = set(keys), {}
        statement = select(*(INVOICES.c[column] for column in (*KEY_COLUMNS, "state"))).where(_NUMBERS_MATCH)
        for params in _numbers_of(wanted):
            for company_id, direction, number, fmt, state in self._rows(statement, params):
                key = EntryKey(company_id=company_id, direction=direction, number=number, format=fmt)
                if key in wanted:
                    states[key] = EntryState(state)
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
        where = _equal(company_id=company_id, month=month, direction=direction)
        where += [INVOICES.c.format.in_([str(fmt) for fmt in formats])]
        where.append(INVOICES.c.state.not_in([str(state) for state in DONE_STATES]))
        if numbers is not None:
            where.append(INVOICES.c.number.in_(list(numbers)))
        return self._select_entries(where)

    def entries(self, company_id: str | None = None, month: str | None = None) -> Iterator[LedgerEntry]:
        return iter(self._select_entries(_equal(company_id=company_id, month=month)))

    def counts(self, company_id: str | None = None, month: str | None = None) -> dict[EntryState, int]:
        """How many entries are in each state (every state present, zero included)."""
        statement = select(INVOICES.c.state, func.count()).where(*_equal(company_id=company_id, month=month))
        found = {EntryState(state): count for state, count in self._rows(statement.group_by(INVOICES.c.state))}
        return {state: found.get(state, 0) for state in EntryState}

    def company_months(self) -> list[CompanyMonth]:
        """Every company and month in the ledger, by company then month, with its counts and last run."""
        return [CompanyMonth.model_validate(record) for record in self._mappings(_company_months_query())]

    def find_by_path(self, path: Path) -> LedgerEntry | None:
        """The entry whose file is at `path` (absolute, or relative to the root), if any."""
        try:
            relative = self._relative(path)
        except ValueError:
            return None  # outside the archive: no entry can point there
        statement = select(INVOICES).where(INVOICES.c.path == relative).order_by(INVOICES.c.updated_at.desc())
        records = self._mappings(statement.limit(1))
        return _entry(records[0]) if records else None

    def _select_entries(self, where: list[ColumnElement[bool]]) -> list[LedgerEntry]:
        return [_entry(record) for record in self._mappings(select(INVOICES).where(*where).order_by(*_ENTRY_ORDER))]

    # -- transactions

    def _write(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one short write transaction, retried whole while another process holds the lock."""

        def transaction() -> T:
            with self._writer.begin() as connection:
                return work(connection)

        return self._retrying(transaction)

    def _read(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one read transaction (one snapshot on SQLite)."""

        def transaction() -> T:
            with self._engine.connect() as connection:
                return work(connection)

        return self._retrying(transaction)

    def _mappings(self, statement: Any, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Each row as a dict by column name (built by zip: SQLAlchemy's row mappings cost get_many 15 %)."""

        def read(connection: Connection) -> list[dict[str, Any]]:
            result = connection.execute(statement, params)
            names = list(result.keys())
            return [dict(zip(names, row, strict=True)) for row in result.all()]

        return self._read(read)

    def _rows(self, statement: Any, params: Mapping[str, Any] | None = None) -> Sequence[Any]:
        return self._read(lambda connection: connection.execute(statement, params).all())

    def _retrying(self, action: Callable[[], T]) -> T:
        retrying = Retrying(
            retry=retry_if_exception(_is_busy),
            stop=stop_after_attempt(LOCK_ATTEMPTS),
            wait=wait_random_exponential(multiplier=0.05, max=2),
            before_sleep=before_sleep_log(logger, logging.WARNING),
            reraise=True,
        )
        with _translated(self.where):
            return retrying(action)


# -- the schema's version, creation and upgrade


def _stored_version(connection: Connection) -> int:
    """The schema version written in the ledger; 0 for a new one."""
    versions = [0]
    if connection.dialect.name == "sqlite":
        versions.append(int(connection.exec_driver_sql("PRAGMA user_version").scalar_one()))
    if inspect(connection).has_table(META.name):
        stored = connection.scalar(select(META.c.value).where(META.c.name == "schema_version"))
        versions.append(int(stored or 0))
    return max(versions)


def _create_schema(connection: Connection) -> None:
    """Create what is missing and mark the version, in the caller's write transaction (one creator at a time)."""
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(_PG_SCHEMA_LOCK)))
    version = _stored_version(connection)  # again: another process may have done it meanwhile
    if version >= SCHEMA_VERSION:
        return
    if version == 1:
        _rename_v1_invoices(connection)
    METADATA.create_all(connection)
    if version == 1:
        _copy_v1_invoices(connection)
    upsert = (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(META)
    row = {"name": "schema_version", "value": str(SCHEMA_VERSION)}
    connection.execute(upsert.values(row).on_conflict_do_update(index_elements=["name"], set_={"value": row["value"]}))
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _rename_v1_invoices(connection: Connection) -> None:
    """Version 1 (SQLite only) keyed invoices by (company, direction, number, format) without an id."""
    connection.exec_driver_sql("DROP INDEX IF EXISTS invoices_by_month")
    connection.exec_driver_sql("DROP INDEX IF EXISTS invoices_by_path")
    connection.exec_driver_sql("ALTER TABLE invoices RENAME TO invoices_v1")


def _copy_v1_invoices(connection: Connection) -> None:
    columns = ", ".join(_V1_COLUMNS)
    connection.exec_driver_sql(f"INSERT INTO invoices ({columns}) SELECT {columns} FROM invoices_v1 ORDER BY rowid")
    connection.exec_driver_sql("DROP TABLE invoices_v1")


@contextlib.contextmanager
def _translated(where: str) -> Iterator[None]:
    """Database errors that mean the folder, disk or server is at fault -> ArchiveError; any other is a bug."""
    try:
        yield
    except DBAPIError as exc:
        failure = _failure(exc)
        if failure is None:
            raise
        what, fix = failure
        said = " ".join(str(exc.orig).split())  # the driver's own words, on one line, without the SQL
        raise ArchiveError(f"cannot use the ledger {where}: {what} ({said}); {fix}") from exc
