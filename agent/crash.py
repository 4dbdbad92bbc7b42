"""An unexpected error (a bug, not a FapiaoError): its traceback goes to a file, the person gets one line.

The file lies in the debug folder (`debug_dir`, default `<out>/_debug`), mode 0600, and every password the run
knew is blanked out of it (config.redact), so it can be attached to a bug report as it is.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
import traceback
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from agent.config import redact

PACKAGE_DIR = Path(__file__).resolve().parent
FALLBACK_FOLDER = Path(tempfile.gettempdir()) / "fapiao-debug"  # settings not read yet: no debug folder known


def where(exc: BaseException) -> str:
    """The innermost frame of our own code that the error passed through, e.g. `agent/ledger.py:212 in get`."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [frame for frame in frames if Path(frame.filename).resolve().is_relative_to(PACKAGE_DIR)] or frames
    if not ours:
        return "an unknown place"
    frame = ours[-1]
    path = Path(frame.filename).resolve()
    shown = path.relative_to(PACKAGE_DIR.parent) if path.is_relative_to(PACKAGE_DIR.parent) else path
    return f"{shown}:{frame.lineno} in {frame.name}"


def summary(exc: BaseException, limit: int = 200) -> str:
    """`RuntimeError: what it said (at agent/x.py:12 in f)`, on one line, without a password."""
    said = redact(str(exc)).strip().splitlines()
    text = f"{type(exc).__name__}: {said[0]}" if said else type(exc).__name__
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{text} (at {where(exc)})"


def _version() -> str:
    try:
        return version("fapiao-agent")
    except PackageNotFoundError:
        return "unknown"


def write_crash_report(exc: BaseException, folder: Path | None) -> Path:
    """Write the traceback and what ran into a new file in `folder`; return its path."""
    lines = [
        f"fapiao-agent {_version()} · Python {platform.python_version()} · {platform.platform()}",
        f"command: {' '.join(sys.argv)}",
        f"time: {time.strftime('%Y-%m-%d %H:%M:%S %z')}",
        "",
        *traceback.format_exception(exc),
    ]
    text = redact("\n".join(line.rstrip("\n") for line in lines) + "\n")
    for candidate in (folder, FALLBACK_FOLDER):
        if candidate is None:
            continue
        path = candidate / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
        try:
            candidate.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
            return path
        except OSError:
            continue  # an unwritable debug folder: the fallback one
    raise OSError("no folder to write the crash report to")
