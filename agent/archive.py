"""Where files go: safe names from a layout template, atomic writes, quarantine.

One run per archive: `ArchiveLock` holds an flock on `<out>/.fapiao.lock` for the whole run.

Every value put into a path comes from the portal and may be hostile ("../../etc/passwd", control characters,
names longer than a file system allows), so each one is sanitized and every final path is checked to lie under
the archive root. A file only ever appears at its final name complete: it is written to a hidden temp file in
the same folder, flushed to disk and renamed into place.

OSError is translated into ArchiveError here, naming the folder, what happened and the fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import secrets
import socket
import string
import time
import unicodedata
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path, PurePosixPath

from agent.errors import ArchiveBusy, ArchiveError, SettingsError

try:
    import fcntl
except ImportError:  # Windows: no flock; keeping to one run per archive is then the user's care
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
from agent.portal import KIND_NAMES, STATUS_NAMES
from agent.records import FileFormat, InvoiceRow

DEFAULT_LAYOUT = "{company_id}/{month}/{direction}/{date}_{number}_{counterpart}_{total}.{ext}"
LAYOUT_NAMES: tuple[str, ...] = (
    "company_id", "year", "month", "date", "direction", "number", "counterpart",
    "seller", "buyer", "kind", "status", "total", "ext",
)  # fmt: skip
REQUIRED_NAMES: tuple[str, ...] = ("number", "ext")  # without them two invoices or two formats share a path
QUARANTINE_FOLDER = "_quarantine"
LOCK_NAME = ".fapiao.lock"
LOCK_POLL_SECONDS = 1.0  # how often a run told to wait (--wait) tries the lock again
MAX_COMPONENT_BYTES = 120
PARTIAL_MARK = ".part-"
_HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]  # temp names say which host writes
_MAX_EXTENSION_BYTES = 16

_UNSAFE_CHARS = re.compile(r'[/\\<>:"|?*]')
_DOT_RUNS = re.compile(r"\.{2,}")
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(1, 10)} | {f"LPT{i}" for i in range(1, 10)}
)
_OS_ERROR_ADVICE: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("the disk is full", "free some space or choose another output folder"),
    errno.EDQUOT: ("the disk quota is exhausted", "free some space or choose another output folder"),
    errno.EACCES: (
        "permission denied",
        "make the folder writable for this user or choose another output folder",
    ),
    errno.EPERM: (
        "operation not permitted",
        "make the folder writable for this user or choose another output folder",
    ),
    errno.EROFS: ("the file system is read-only", "choose an output folder on a writable disk"),
}


def archive_error(exc: OSError, folder: Path) -> ArchiveError:
    """An OSError in the output folder, told in the user's terms: folder, what happened, the fix."""
    what, fix = _OS_ERROR_ADVICE.get(exc.errno or 0, (exc.strerror or str(exc), "check the output folder"))
    return ArchiveError(f"cannot write to {folder}: {what}; {fix}")


def sanitize_component(text: str) -> str:
    """One path component from any text: no separators, controls, Windows-illegal chars or leading dots."""
    text = unicodedata.normalize("NFC", text)
    if not text.isprintable():  # the common case skips the per-character look-up: printable has no controls
        text = "".join("_" if unicodedata.category(char).startswith("C") else char for char in text)
    text = _UNSAFE_CHARS.sub("_", text)
    text = _DOT_RUNS.sub(".", text)  # no ".." anywhere, not even inside a name
    text = text.lstrip(". ").rstrip(". ")  # leading dots hide files; Windows drops trailing dots and spaces
    if text.split(".")[0].upper() in _WINDOWS_RESERVED:
        text = "_" + text
    return text or "_"


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8"))


def _truncate_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` that fits in `max_bytes` of UTF-8, never cutting a character in half."""
    return text.encode("utf-8")[: max(max_bytes, 0)].decode("utf-8", "ignore")


def _fit_component(name: str, max_bytes: int = MAX_COMPONENT_BYTES) -> str:
    """Cut a too-long component to `max_bytes`, keeping a short extension such as ".pdf"."""
    if _utf8_size(name) <= max_bytes:
        return sanitize_component(name)
    stem, dot, ext = name.rpartition(".")
    if not dot or _utf8_size(ext) > _MAX_EXTENSION_BYTES:
        stem, dot, ext = name, "", ""
    return sanitize_component(_truncate_utf8(stem, max_bytes - _utf8_size(dot + ext)) + dot + ext)


def _placeholders(template: str) -> list[tuple[str, str, str | None]]:
    """(name, format spec, conversion) of each placeholder; SettingsError on unbalanced braces."""
    try:
        return [
            (name, spec or "", conv)
            for _, name, spec, conv in string.Formatter().parse(template)
            if name is not None
        ]
    except ValueError as exc:
        raise SettingsError(f"setting `layout`: {exc} in {template!r}") from exc


def _literal_text(template: str) -> str:
    return "".join(text for text, _, _, _ in string.Formatter().parse(template))


def _is_plain_folder_part(part: str) -> bool:
    literal = _literal_text(part)
    hostile = _UNSAFE_CHARS.search(literal) or any(unicodedata.category(c).startswith("C") for c in literal)
    return bool(part) and not part.startswith(".") and not hostile


def validate_layout(layout: str) -> None:
    """Refuse a layout that names unknown fields, formats them, or could leave the archive root."""
    fields = _placeholders(layout)
    names = {name for name, _, _ in fields}
    unknown = sorted(names - set(LAYOUT_NAMES))
    if unknown:
        raise SettingsError(
            f"setting `layout`: unknown placeholder {unknown}; allowed: {', '.join(LAYOUT_NAMES)}"
        )
    if any(spec or conversion for _, spec, conversion in fields):
        raise SettingsError(
            "setting `layout`: placeholders take no format spec or conversion, write e.g. {total}"
        )
    missing = [name for name in REQUIRED_NAMES if name not in names]
    if missing:
        raise SettingsError(f"setting `layout`: must contain {', '.join('{' + n + '}' for n in missing)}")
    if not all(_is_plain_folder_part(part) for part in layout.split("/")):
        raise SettingsError(
            f"setting `layout`: {layout!r} must be a relative path of plain names joined by '/' "
            '(no leading "/" or ".", no "..", no \\ < > : " | ? * or control characters)'
        )


def _layout_values(row: InvoiceRow, fmt: FileFormat, company_id: str) -> dict[str, str]:
    """Every placeholder's raw value for one invoice file, before sanitizing."""
    return {
        "company_id": company_id,
        "year": f"{row.issued_at:%Y}",
        "month": f"{row.issued_at:%Y-%m}",
        "date": f"{row.issued_at:%Y-%m-%d}",
        "direction": row.direction.value,
        "number": row.number,
        "counterpart": row.counterpart_name,
        "seller": row.seller_name,
        "buyer": row.buyer_name,
        "kind": KIND_NAMES.get(row.kind, row.kind),
        "status": STATUS_NAMES.get(row.status, row.status),
        "total": f"{row.total:.2f}",
        "ext": fmt.value,
    }


def _render_component(template: str, values: dict[str, str]) -> str:
    """Fill one component; when too long, shorten its longest values first so the invoice number survives."""
    values = dict(values)
    names = {name for name, _, _ in _placeholders(template)}
    for name in sorted(names, key=lambda name: _utf8_size(values[name]), reverse=True):
        excess = _utf8_size(template.format(**values)) - MAX_COMPONENT_BYTES
        if excess <= 0:
            break
        values[name] = sanitize_component(_truncate_utf8(values[name], _utf8_size(values[name]) - excess))
    return _fit_component(template.format(**values))


def _partial_name(name: str) -> str:
    """A hidden temp name next to `name` that says who writes it: this host's tag and this process's id."""
    return f".{name}{PARTIAL_MARK}{_HOST_TAG}.{os.getpid()}.{secrets.token_hex(4)}"


def _writer_is_gone(partial: Path) -> bool:
    """True when the temp file was written by a process of this host that no longer runs (a crashed run)."""
    host, _, rest = partial.name.partition(PARTIAL_MARK)[2].partition(".")
    pid = rest.partition(".")[0]
    if host != _HOST_TAG or not pid.isdigit():
        return False  # another host's, or an older name: only its age tells
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:  # it exists, and belongs to someone else
        return False
    return False


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return  # Windows cannot open a directory; NTFS journals the rename itself
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(temp: Path) -> None:
    with contextlib.suppress(OSError):  # the original error is the one worth reporting
        temp.unlink(missing_ok=True)


def _write_new_file(path: Path, data: bytes) -> None:
    """Create `path`, which must not exist yet, write all of `data` and flush it to the disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:  # os.write may write less than asked
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


class Archive:
    """The archive root and its file naming; the only code that writes invoice files."""

    def __init__(self, root: Path, layout: str = DEFAULT_LAYOUT) -> None:
        validate_layout(layout)
        self.root = root.resolve()
        self.layout = layout

    def _relative_path_for(self, row: InvoiceRow, fmt: FileFormat, company_id: str) -> PurePosixPath:
        raw = _layout_values(row, fmt, company_id)
        values = {name: sanitize_component(value) for name, value in raw.items()}
        return PurePosixPath(*(_render_component(part, values) for part in self.layout.split("/")))

    def path_for(self, row: InvoiceRow, fmt: FileFormat, company_id: str) -> Path:
        """The file's final path. Its components are sanitized, so it lies under the root as written;
        symbolic links inside the archive are followed when the file is written (write_atomic)."""
        return self.root / self._relative_path_for(row, fmt, company_id)

    def quarantine_path(self, row: InvoiceRow, fmt: FileFormat, company_id: str) -> Path:
        relative = self._relative_path_for(row, fmt, company_id)
        return self._inside_root(self.root / QUARANTINE_FOLDER / relative)

    def write_atomic(self, path: Path, data: bytes) -> tuple[str, int]:
        """Write `data` at `path` all or nothing; returns its sha256 (hex) and size."""
        path = self._inside_root(path)
        temp = path.parent / _partial_name(path.name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_new_file(temp, data)
            os.replace(temp, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            _discard(temp)
            raise archive_error(exc, path.parent) from exc
        except BaseException:
            _discard(temp)
            raise
        return hashlib.sha256(data).hexdigest(), len(data)

    def quarantine(self, data: bytes, row: InvoiceRow, fmt: FileFormat, company_id: str, reason: str) -> Path:
        """Keep a rejected file out of the archive proper, with a note saying why, for a person to look at."""
        path = self.quarantine_path(row, fmt, company_id)
        self.write_atomic(path, data)
        note = f"{reason}\n\nlisting row:\n{row.model_dump_json(indent=2)}\n"
        self.write_atomic(path.with_name(path.name + ".reason.txt"), note.encode("utf-8"))
        return path

    @staticmethod
    def sha256_of(path: Path) -> str:
        """A file's hash; OSError (missing, unreadable) is left to the caller, who knows its meaning."""
        with path.open("rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()

    def check_writable(self) -> None:
        """Create the root and prove a file can be written there, before any download starts."""
        probe = self.root / _partial_name("write-test")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            _write_new_file(probe, b"ok")
        except OSError as exc:
            raise archive_error(exc, self.root) from exc
        finally:
            _discard(probe)

    def sweep_partials(self, min_age_seconds: float = 3600) -> list[Path]:
        """Remove temp files a crash left behind: those whose writer on this host is gone, and any older than
        `min_age_seconds` (a young one of another host may belong to a run still writing it)."""
        cutoff = time.time() - min_age_seconds
        removed = []
        for path in self.root.rglob(f".*{PARTIAL_MARK}*"):
            with contextlib.suppress(FileNotFoundError):  # another run may finish or sweep it meanwhile
                if path.is_file() and (path.stat().st_mtime < cutoff or _writer_is_gone(path)):
                    path.unlink()
                    removed.append(path)
        return removed

    def _inside_root(self, path: Path) -> Path:
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root):
            raise ArchiveError(f"refusing to write outside the archive {self.root}: {path}")
        return resolved


class ArchiveLock:
    """One run per archive. An flock on `<root>/.fapiao.lock`: the kernel releases it when the process ends,
    however it ends, so a killed run never keeps it (its children do not inherit it either). The file says who
    holds it (pid, host, start), for the message another run shows."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / LOCK_NAME
        self._fd: int | None = None

    @contextlib.asynccontextmanager
    async def held(self, wait: bool) -> AsyncIterator[None]:
        """Hold the lock for the body. Held by another run: ArchiveBusy naming it, or with `wait` poll until free."""
        if not self._try_acquire():
            if not wait:
                raise ArchiveBusy(
                    f"another run works on the archive {self.root}: {self.holder()}; let it finish, "
                    "or add --wait to start when it has"
                )
            log.warning("waiting for another run on the archive %s to finish: %s", self.root, self.holder())
            while not self._try_acquire():
                await asyncio.sleep(LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            self._release()

    def _try_acquire(self) -> bool:
        if fcntl is None:
            return True
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise archive_error(exc, self.root) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        started = datetime.now().astimezone().isoformat(timespec="seconds")
        note = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started})
        os.ftruncate(fd, 0)
        os.pwrite(fd, note.encode(), 0)
        self._fd = fd
        return True

    def holder(self) -> str:
        """Who holds the lock, as its file says: "pid 4242 on host-a, started 2026-11-30T09:00:00+08:00"."""
        try:
            note = json.loads(self.path.read_text(encoding="utf-8"))
            return f"pid {note['pid']} on {note['host']}, started {note['started']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "a run that is just starting"

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases the flock
            self._fd = None
