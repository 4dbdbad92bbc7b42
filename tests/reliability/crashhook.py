"""Crash points no outside timing can hit: the agent process kills itself (SIGKILL) at an exact moment.

Armed from the environment before the CLI starts (`python -c "import crashhook; crashhook.arm(); ..."`):

    CRASH_AT=write:K     half-way through writing the K-th invoice file (its temp file half full, flushed)
    CRASH_AT=commit:K    inside the ledger transaction that marks the K-th file verified, before COMMIT (the
                         files recorded in one batch with it die with it)
    CRASH_AT=manifest    half-way through writing manifest.csv, after every file was recorded
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import agent.archive
import agent.ledger

VARIABLE = "CRASH_AT"


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _half_then_die(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, data[: len(data) // 2])
    os.fsync(fd)
    die()


def _crash_in_write(nth: int, names: Callable[[Path], bool]) -> None:
    original = agent.archive._write_new_file
    seen = 0

    def write(path: Path, data: bytes) -> None:
        nonlocal seen
        if names(path):
            seen += 1
            if seen == nth:
                _half_then_die(path, data)
        original(path, data)

    agent.archive._write_new_file = write


def _is_invoice_file(path: Path) -> bool:
    return path.name.split(agent.archive.PARTIAL_MARK)[0].endswith((".pdf", ".ofd", ".xml"))


def _is_manifest(path: Path) -> bool:
    return path.name.startswith(".manifest.csv")


def _crash_in_commit(nth: int) -> None:
    """The ledger transaction that marks the K-th file verified (with the others written in its batch) runs its
    UPDATEs, and the process dies before COMMIT."""
    ledger = agent.ledger.Ledger
    original_apply, original_write = ledger.apply, ledger._write
    state = {"seen": 0, "armed": False}

    def apply(self: Any, run_id: int, changes: Any) -> None:
        before = state["seen"]
        state["seen"] += sum(change.state is agent.ledger.EntryState.verified for change in changes)
        state["armed"] = before < nth <= state["seen"]
        original_apply(self, run_id, changes)

    def write(self: Any, work: Callable[[Any], Any]) -> Any:
        if state["armed"]:
            with self._writer.begin() as connection:  # BEGIN IMMEDIATE on SQLite
                work(connection)
                die()
        return original_write(self, work)

    ledger.apply = apply  # type: ignore[method-assign]
    ledger._write = write  # type: ignore[method-assign]


def arm() -> None:
    point, _, count = os.environ.get(VARIABLE, "").partition(":")
    if point == "write":
        _crash_in_write(int(count), _is_invoice_file)
    elif point == "commit":
        _crash_in_commit(int(count))
    elif point == "manifest":
        _crash_in_write(1, _is_manifest)
    elif point:
        raise ValueError(f"unknown {VARIABLE}={point!r}")
