"""agent.archive: safe names from the layout, atomic writes, quarantine, unwritable folders."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from agentkit import run_async
from hypothesis import given
from hypothesis import strategies as st
from rowkit import COMPANY, NUMBER, make_row

from agent.archive import LOCK_NAME, Archive, ArchiveLock, sanitize_component
from agent.errors import EXIT_BUSY, ArchiveBusy, ArchiveError, SettingsError
from agent.records import Direction, FileFormat


def components(archive: Archive, path: Path) -> tuple[str, ...]:
    return path.relative_to(archive.root).parts


# -- names


def test_default_layout_names_received_invoice_after_seller(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    path = archive.path_for(make_row(), FileFormat.pdf, COMPANY)
    expected = f"{COMPANY}/2025-10/received/2025-10-08_{NUMBER}_北京某某科技有限公司_1234.50.pdf"
    assert path == tmp_path.resolve() / expected


def test_default_layout_names_issued_invoice_after_buyer(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    path = archive.path_for(
        make_row(direction=Direction.issued, total=Decimal("-12.5")), FileFormat.ofd, COMPANY
    )
    assert path.name == f"2025-10-08_{NUMBER}_上海买方贸易有限公司_-12.50.ofd"


def test_layout_fills_every_placeholder(tmp_path: Path) -> None:
    layout = "{year}/{kind}/{status}/{seller}_{buyer}_{number}.{ext}"
    path = Archive(tmp_path, layout).path_for(make_row(), FileFormat.xml, COMPANY)
    assert components(Archive(tmp_path), path) == (
        "2025",
        "数电票（普通发票）",
        "正常",
        f"北京某某科技有限公司_上海买方贸易有限公司_{NUMBER}.xml",
    )


def test_unknown_placeholder_names_the_setting_and_allowed_names(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        Archive(tmp_path, "{company}/{number}.{ext}")
    assert str(caught.value) == (
        "setting `layout`: unknown placeholder ['company']; allowed: company_id, year, month, date, "
        "direction, number, counterpart, seller, buyer, kind, status, total, ext"
    )


@pytest.mark.parametrize("layout", ["{number:/>30}.{ext}", "{number!r}.{ext}"])
def test_layout_with_format_spec_or_conversion_is_refused(tmp_path: Path, layout: str) -> None:
    with pytest.raises(SettingsError, match="no format spec or conversion"):
        Archive(tmp_path, layout)


@pytest.mark.parametrize("layout", ["{company_id}/{date}.{ext}", "{company_id}/{number}.pdf"])
def test_layout_without_number_or_ext_is_refused(tmp_path: Path, layout: str) -> None:
    with pytest.raises(SettingsError, match="must contain"):
        Archive(tmp_path, layout)


@pytest.mark.parametrize(
    "layout",
    [
        "../{number}.{ext}",
        "/etc/{number}.{ext}",
        "a//{number}.{ext}",
        ".hidden/{number}.{ext}",
        "a\\b/{number}.{ext}",
        "a:b/{number}.{ext}",
        "a\x00/{number}.{ext}",
    ],
)
def test_layout_that_could_leave_root_is_refused(tmp_path: Path, layout: str) -> None:
    with pytest.raises(SettingsError, match="must be a relative path of plain names"):
        Archive(tmp_path, layout)


def test_layout_with_unbalanced_brace_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="setting `layout`"):
        Archive(tmp_path, "{number.{ext}")


@pytest.mark.parametrize(
    ("hostile", "safe"),
    [
        ("../../etc/passwd", "_._etc_passwd"),
        ("a/b\\c", "a_b_c"),
        ("\x00\x1f", "__"),
        ("..", "_"),
        (".hidden", "hidden"),
        ("", "_"),
        ("name. ", "name"),
        ('a<b>c:d"e|f?g*h', "a_b_c_d_e_f_g_h"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("Cafe\u0301", "Caf\u00e9"),
        ("right\u202eleft", "right_left"),
        ("北京某某科技有限公司", "北京某某科技有限公司"),
    ],
)
def test_sanitize_component_neutralizes_hostile_text(hostile: str, safe: str) -> None:
    assert sanitize_component(hostile) == safe


@pytest.mark.parametrize("hostile", ["../../etc/passwd", "a/b\\c", "\x00\x1f", "..", ".hidden", "/", "~root"])
def test_hostile_values_in_every_placeholder_stay_under_root(tmp_path: Path, hostile: str) -> None:
    archive = Archive(tmp_path, "{company_id}/{counterpart}/{kind}/{status}/{number}.{ext}")
    row = make_row(seller_name=hostile, kind=hostile, status=hostile, number=hostile)
    path = archive.path_for(row, FileFormat.pdf, hostile)
    parts = components(archive, path)
    assert len(parts) == 5
    assert all(part not in (".", "..") and not part.startswith(".") for part in parts)


def test_very_long_chinese_name_is_cut_keeping_number_total_and_extension(tmp_path: Path) -> None:
    path = Archive(tmp_path).path_for(make_row(seller_name="很" * 100), FileFormat.pdf, COMPANY)
    assert path.name == f"2025-10-08_{NUMBER}_{'很' * 25}_1234.50.pdf"
    assert len(path.name.encode("utf-8")) == 119


def test_very_long_folder_value_is_cut_to_120_bytes(tmp_path: Path) -> None:
    archive = Archive(tmp_path, "{counterpart}/{number}.{ext}")
    path = archive.path_for(make_row(seller_name="长" * 100), FileFormat.pdf, COMPANY)
    assert components(archive, path) == ("长" * 40, f"{NUMBER}.pdf")


@given(text=st.text(st.characters(exclude_categories=())))
def test_any_text_gives_a_safe_component(text: str) -> None:
    component = sanitize_component(text)
    assert component
    assert component not in (".", "..") and not component.startswith(".")
    assert not any(char in component for char in '/\\<>:"|?*')
    assert all(ord(char) >= 0x20 and not 0xD800 <= ord(char) <= 0xDFFF for char in component)
    component.encode("utf-8")  # no lone surrogate left: the file system must accept it


@given(text=st.text(st.characters(exclude_categories=())))
def test_any_text_in_any_placeholder_keeps_the_path_under_root(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    root = tmp_path_factory.getbasetemp() / "archive"
    archive = Archive(root, "{company_id}/{counterpart}/{date}_{number}_{buyer}_{total}.{ext}")
    path = archive.path_for(make_row(seller_name=text, buyer_name=text, number=text), FileFormat.pdf, text)
    parts = components(archive, path)
    assert len(parts) == 3
    assert all(part and len(part.encode("utf-8")) <= 120 for part in parts)
    assert parts[-1].endswith(".pdf")


# -- atomic writes


def test_write_atomic_writes_file_and_returns_hash_and_size(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    path = archive.path_for(make_row(), FileFormat.pdf, COMPANY)
    assert archive.write_atomic(path, b"%PDF-1.7 body") == (hashlib.sha256(b"%PDF-1.7 body").hexdigest(), 13)
    assert path.read_bytes() == b"%PDF-1.7 body"
    assert os.listdir(path.parent) == [path.name]


def fail_on_second_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """os.write writes a few bytes, then the disk is full."""
    real_write = os.write
    calls = []

    def write(fd: int, data: bytes) -> int:
        calls.append(fd)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, bytes(data[:4]))

    monkeypatch.setattr(os, "write", write)


def test_disk_full_midway_leaves_no_file_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = Archive(tmp_path)
    path = archive.path_for(make_row(), FileFormat.pdf, COMPANY)
    fail_on_second_write(monkeypatch)
    with pytest.raises(ArchiveError) as caught:
        archive.write_atomic(path, b"%PDF-1.7 a longer body")
    assert str(caught.value) == (
        f"cannot write to {path.parent}: the disk is full; free some space or choose another output folder"
    )
    assert os.listdir(path.parent) == []


def test_failed_replacement_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = Archive(tmp_path)
    path = archive.path_for(make_row(), FileFormat.pdf, COMPANY)
    archive.write_atomic(path, b"%PDF-1.7 old")

    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(ArchiveError, match="the disk is full"):
        archive.write_atomic(path, b"%PDF-1.7 new")
    assert path.read_bytes() == b"%PDF-1.7 old"
    assert os.listdir(path.parent) == [path.name]


def test_read_only_file_system_is_an_archive_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = Archive(tmp_path)

    def replace(source: str, target: str) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(
        ArchiveError, match="the file system is read-only; choose an output folder on a writable disk"
    ):
        archive.write_atomic(tmp_path / "a.pdf", b"data")
    assert os.listdir(tmp_path) == []


def test_write_outside_root_is_refused(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive")
    with pytest.raises(ArchiveError, match="refusing to write outside the archive"):
        archive.write_atomic(tmp_path / "archive" / ".." / "escaped.pdf", b"data")
    assert not (tmp_path / "escaped.pdf").exists()


def test_sha256_of_matches_hash_of_contents(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    sha256, _ = archive.write_atomic(tmp_path / "a.pdf", b"x" * 100_000)
    assert Archive.sha256_of(tmp_path / "a.pdf") == sha256 == hashlib.sha256(b"x" * 100_000).hexdigest()


# -- quarantine


def test_quarantine_writes_file_and_reason_under_quarantine_folder(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    row = make_row()
    path = archive.quarantine(
        b"%PDF-1.7 other", row, FileFormat.pdf, COMPANY, "total 99.00 on file, 1234.50 listed"
    )
    expected = f"_quarantine/{COMPANY}/2025-10/received/2025-10-08_{NUMBER}_北京某某科技有限公司_1234.50.pdf"
    assert path == archive.quarantine_path(row, FileFormat.pdf, COMPANY) == tmp_path.resolve() / expected
    assert path.read_bytes() == b"%PDF-1.7 other"
    reason = path.with_name(path.name + ".reason.txt").read_text(encoding="utf-8")
    assert reason.startswith("total 99.00 on file, 1234.50 listed\n\nlisting row:\n{")
    assert NUMBER in reason


# -- the root folder


def test_check_writable_creates_root_and_leaves_nothing(tmp_path: Path) -> None:
    root = tmp_path / "new" / "archive"
    Archive(root).check_writable()
    assert os.listdir(root) == []


def test_check_writable_refused_write_is_an_archive_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> int:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(ArchiveError) as caught:
        Archive(tmp_path).check_writable()
    assert str(caught.value) == (
        f"cannot write to {tmp_path.resolve()}: permission denied; "
        "make the folder writable for this user or choose another output folder"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0500")
def test_check_writable_on_read_only_folder_is_an_archive_error(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    root.mkdir()
    root.chmod(0o500)
    try:
        with pytest.raises(ArchiveError, match="permission denied"):
            Archive(root).check_writable()
    finally:
        root.chmod(0o700)


def test_sweep_partials_removes_only_stale_temp_files(tmp_path: Path) -> None:
    folder = tmp_path / COMPANY / "2025-10"
    folder.mkdir(parents=True)
    stale = folder / ".a.pdf.part-0a1b2c3d"
    fresh = folder / ".b.pdf.part-4e5f6a7b"
    kept = folder / "a.pdf"
    for path in (stale, fresh, kept):
        path.write_bytes(b"x")
    os.utime(stale, (0, 0))
    os.utime(kept, (0, 0))
    assert Archive(tmp_path).sweep_partials() == [stale.resolve()]
    assert sorted(os.listdir(folder)) == [".b.pdf.part-4e5f6a7b", "a.pdf"]


# -- one run per archive


async def hold_then(root: Path, inner: ArchiveLock, wait: bool) -> list[str]:
    """Hold the lock, try `inner` meanwhile; what happened, in order."""
    events: list[str] = []

    async def second() -> None:
        async with inner.held(wait=wait):
            events.append("second holds it")

    async with ArchiveLock(root).held(wait=False):
        events.append("first holds it")
        trying = asyncio.ensure_future(second())
        await asyncio.sleep(0.2)
        events.append("first lets go")
    await trying
    return events


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    with pytest.raises(ArchiveBusy) as refused:
        run_async(hold_then(tmp_path, ArchiveLock(tmp_path), wait=False))
    assert refused.value.exit_code == EXIT_BUSY
    assert f"another run works on the archive {tmp_path}: pid {os.getpid()} on " in str(refused.value)
    assert "add --wait" in str(refused.value)


def test_a_waiting_holder_gets_the_lock_when_it_is_released(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agent.archive.LOCK_POLL_SECONDS", 0.05)
    events = run_async(hold_then(tmp_path, ArchiveLock(tmp_path), wait=True))
    assert events == ["first holds it", "first lets go", "second holds it"]
    assert (tmp_path / LOCK_NAME).is_file()  # left in place: only the flock on it counts


HOLDER = """
import asyncio, sys, time
from pathlib import Path
from agent.archive import ArchiveLock
async def hold():
    async with ArchiveLock(Path(sys.argv[1])).held(wait=False):
        print("held", flush=True)
        time.sleep(60)
asyncio.run(hold())
"""


def test_a_killed_holder_keeps_no_lock(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env) as holder:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(ArchiveBusy, match=f"pid {holder.pid} on "):
            run_async(hold_then(tmp_path, ArchiveLock(tmp_path), wait=False))
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()

    async def take() -> bool:
        async with ArchiveLock(tmp_path).held(wait=False):
            return True

    assert run_async(take())
