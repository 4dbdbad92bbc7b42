"""What the pages show, without a browser: the grid's states from the ledger and the queue, the month window,
the portal's Total, who "run again" is for, the captcha image, and the screenshot script's seeded firm."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from webkit import TODAY, A, B, C, FakeQueue, Seeded

from agent.ledger import Ledger
from agent.web import status
from agent.web.status import CellState, Sources


@pytest.fixture
def sources(seeded: Seeded, fake_queue: FakeQueue) -> Iterator[Sources]:
    with Ledger.open(seeded.root) as ledger:
        yield Sources(ledger=ledger, queue=fake_queue, settings=seeded.settings, today=lambda: TODAY)


def states(view: status.HomeView) -> dict[tuple[str, str], CellState]:
    return {(cell.company_id, cell.month): cell.state for row in view.rows for cell in row.cells}


def test_the_grid_ends_at_the_latest_month_known_and_each_cell_takes_the_first_state_that_holds(sources: Sources) -> None:
    view = status.home(sources)
    assert view.months == ["2025-05", "2025-06", "2025-07", "2025-08", "2025-09", "2025-10"]
    assert (view.earlier, view.later) == ("2025-04", "2025-11")  # never past this month
    found = states(view)
    assert found[A, "2025-10"] is CellState.gaps and found[B, "2025-10"] is CellState.waiting
    assert found[C, "2025-10"] is CellState.running and found[C, "2025-08"] is CellState.queued
    assert found[A, "2025-05"] is CellState.not_run
    sources.queue.waiting[0].companies = [A, B]  # type: ignore[union-attr]  # now also holds up A's gaps
    assert states(status.home(sources))[A, "2025-10"] is CellState.waiting


def test_without_a_queue_the_grid_is_the_ledgers(sources: Sources) -> None:
    sources.queue = None
    found = states(status.home(sources, count=2))
    assert found == {(A, "2025-09"): CellState.complete, (A, "2025-10"): CellState.gaps,
                     (B, "2025-09"): CellState.not_run, (B, "2025-10"): CellState.not_run,
                     (C, "2025-09"): CellState.complete, (C, "2025-10"): CellState.not_run}
    assert status.people(sources) == []


def test_a_task_that_found_nothing_makes_an_empty_month_complete_and_a_refused_login_a_gap(sources: Sources) -> None:
    from agent.queue import TaskOutcome

    queue = sources.queue
    assert isinstance(queue, FakeQueue)
    queue.running, queue.queued, queue.waiting = [], [], []
    month = {"date_from": date(2025, 7, 1), "date_to": date(2025, 7, 31), "finished": TODAY}
    queue.recent = [
        TaskOutcome(task_id="1", person="li", companies=None, outcome="complete", message="listed 0", **month),
        TaskOutcome(task_id="2", person="wang", companies=[B], outcome="login refused", message="密码错误 (2035)", **month),
    ]
    view = status.home(sources)
    found = {(cell.company_id, cell.month): cell for row in view.rows for cell in row.cells}
    assert found[C, "2025-07"].state is CellState.complete and found[C, "2025-07"].note == "nothing listed"
    assert found[B, "2025-07"].state is CellState.gaps and "login refused" in found[B, "2025-07"].note
    assert found[A, "2025-07"].state is CellState.not_run


def test_filters_keep_a_persons_companies_or_those_matching_the_text(sources: Sources) -> None:
    assert [row.company_id for row in status.home(sources, person="wang").rows] == sorted([A, B])
    assert [row.company_id for row in status.home(sources, company=C[-6:].lower()).rows] == [C]
    assert [row.company_id for row in status.home(sources, person="nobody").rows] == sorted([A, B, C])


def test_run_again_goes_to_the_person_naming_the_company(sources: Sources) -> None:
    assert (sources.person_for(A), sources.person_for(C), sources.person_for("91110000000000000X")) == ("wang", "li", None)


def test_the_portal_total_is_what_the_last_run_said_when_it_differed(sources: Sources) -> None:
    view = status.company_month(sources, A, "2025-10")
    totals = {t.direction.value: (t.portal_total, t.archived, t.missing) for t in view.totals}
    assert totals == {"issued": (1, 1, 0), "received": (4, 2, 2)}
    assert view.person == "wang" and view.name == "北京甲科技有限公司"
    assert [line.state_cn for line in view.lines] == ["已核验", "已核验", "失败", "纸质发票"]
    assert status.company_month(sources, A, "2025-09").totals[1].said == []  # another month's line is not its


def test_months_and_ranges() -> None:
    assert status.shift("2025-01", -1) == "2024-12" and status.shift("2025-12", 1) == "2026-01"
    assert status.months_between(date(2025, 11, 20), date(2026, 2, 1)) == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert status.month_range("2025-11", date(2025, 11, 15)) == (date(2025, 11, 1), date(2025, 11, 15))
    assert status.month_range("2024-02", date(2025, 11, 15)) == (date(2024, 2, 1), date(2024, 2, 29))


def test_only_an_image_reaches_the_page_as_a_captcha() -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 40).decode()
    assert status._data_url(png) == f"data:image/png;base64,{png}"
    for hostile in (base64.b64encode(b"<svg onload=alert(1)>" + b"\0" * 20).decode(), png + '"><script>', "not base64!"):
        assert status._data_url(hostile) is None


def test_the_screenshot_firm_shows_every_state(tmp_path: Path) -> None:
    from agent.queue import FirmQueue
    from agent.web.screenshots import plant_queue, seed_firm

    today = date(2026, 11, 30)
    firm = seed_firm(tmp_path / "archive", today)
    queue = FirmQueue(firm.settings)
    plant_queue(queue, firm, today)
    with Ledger.open(tmp_path / "archive") as ledger:
        view = status.home(Sources(ledger, queue, firm.settings, today=lambda: today))
        assert view.months == firm.months and len(view.rows) == 10
        assert all(view.totals[state] for state in CellState), view.totals
        featured = status.company_month(Sources(ledger, queue, firm.settings, today=lambda: today), *firm.featured)
        assert featured.cell.state is CellState.queued and [t.missing for t in featured.totals] == [2, 1]
        for counts in ledger.company_months():  # one month counted from its entries, as the ledger counts them all
            entries = list(ledger.entries(counts.company_id, counts.month))
            assert status.month_counts(entries, ledger.get_run(counts.last_run_id or 0)) == counts
    queue.close()
