"""A person of the mock firm: one login for all their companies, a switch to each, the session renewed once
for the person, persons side by side on their own contexts with a cap, a company of two persons archived once."""

from __future__ import annotations

from pathlib import Path

import pytest
from agentkit import MONTH, run_async
from firmkit import (
    FIRM,
    Recorder,
    all_match_truth,
    archive,
    firm_settings,
    linked,
    mock_persons,
    person_counters,
)
from pydantic import SecretStr

from agent import errors
from agent.config import Person
from agent.job import Job, JobRequest, job_args
from agent.period import parse_month
from fixtures.portal.faults import FaultSpec
from fixtures.portal.scenario import Scenario
from fixtures.pytest_plugin import MockPortal

pytestmark = pytest.mark.mock_portal("firm", **FIRM)


def test_one_login_archives_every_company_of_the_person_and_a_rerun_downloads_nothing(
    mock_portal: MockPortal, tmp_path: Path
) -> None:
    settings = firm_settings(mock_portal, tmp_path, mock_persons(mock_portal, first=3))
    companies, recorder = linked(mock_portal, "zhou")[:3], Recorder()
    summary = archive(settings, "zhou", recorder)
    assert list(summary.companies) == companies
    assert summary.totals.complete and summary.totals.downloaded > 0
    assert all_match_truth(mock_portal, settings, companies)
    assert recorder.of("started") == recorder.of("company_finished") == companies
    assert recorder.of("person_finished") == ["zhou"]
    again = archive(settings, "zhou")
    assert again.totals.downloaded == 0 and again.totals.skipped == summary.totals.verified
    counters = person_counters(mock_portal, "zhou")
    assert (counters["password_logins"], counters["sms_sent"], counters["max_live_sessions"]) == (1, 1, 1)


def test_all_linked_companies_come_from_the_portals_list(mock_portal: MockPortal, tmp_path: Path) -> None:
    first = linked(mock_portal, "wu")[0]
    persons = {"wu": mock_persons(mock_portal)["wu"].model_copy(update={"companies": "all", "login_company": first})}
    settings = firm_settings(mock_portal, tmp_path, persons)
    summary = archive(settings, "wu")
    assert list(summary.companies) == linked(mock_portal, "wu")  # six, in the portal's order
    assert all_match_truth(mock_portal, settings, linked(mock_portal, "wu"))
    assert person_counters(mock_portal, "wu")["password_logins"] == 1


@pytest.mark.mock_portal(
    Scenario(name="kicked", faults=[FaultSpec(kind="kick_out", after_downloads=12, count=1)]), firm_persons=3, **FIRM
)
def test_a_session_lost_mid_person_is_renewed_once_and_switched_back(mock_portal: MockPortal, tmp_path: Path) -> None:
    settings = firm_settings(mock_portal, tmp_path, mock_persons(mock_portal, first=3))
    summary = archive(settings, "zhou")
    companies = linked(mock_portal, "zhou")[:3]
    assert summary.totals.complete
    assert all_match_truth(mock_portal, settings, companies)
    counters = person_counters(mock_portal, "zhou")
    assert counters["password_logins"] == 2  # the login, and one renewal for the person (not one per company after it)
    assert counters["max_live_sessions"] == 1


def test_a_company_not_linked_is_skipped_the_others_archived_then_said(mock_portal: MockPortal, tmp_path: Path) -> None:
    zhou = linked(mock_portal, "zhou")
    stranger = next(company for company in linked(mock_portal, "wu") if company not in zhou)
    persons = {"zhou": mock_persons(mock_portal)["zhou"].model_copy(update={"companies": [zhou[0], stranger, zhou[1]]})}
    settings = firm_settings(mock_portal, tmp_path, persons)
    with pytest.raises(errors.CompanyNotLinked, match=stranger) as said:
        archive(settings, "zhou")
    assert said.value.exit_code == errors.EXIT_USAGE
    assert all_match_truth(mock_portal, settings, zhou[:2])


def test_persons_run_side_by_side_each_logged_in_once_and_a_shared_company_archived_once(
    mock_portal: MockPortal, tmp_path: Path
) -> None:
    persons = mock_persons(mock_portal, first=2)
    assert set(persons["zhou"].companies) & set(persons["wu"].companies)  # the mock links one company to both
    settings = firm_settings(mock_portal, tmp_path, persons, max_persons=2)
    start, end = parse_month(MONTH)
    request = JobRequest(accounts=list(persons), date_from=start, date_to=end)
    total = run_async(Job(settings, request).run(job_args(request, settings)))
    every = sorted({company for person in persons.values() for company in person.companies})
    assert total.complete and total.downloaded == total.verified
    assert all_match_truth(mock_portal, settings, every)
    assert total.listed == 8 * len(every)  # a company of two persons is listed and fetched once
    for name in persons:
        counters = person_counters(mock_portal, name)
        assert (counters["password_logins"], counters["max_live_sessions"]) == (1, 1)


def test_a_refused_login_is_told_to_the_run_events_and_raised(mock_portal: MockPortal, tmp_path: Path) -> None:
    wrong: Person = mock_persons(mock_portal, first=2)["zheng"].model_copy(update={"password": SecretStr("not-it")})
    settings, recorder = firm_settings(mock_portal, tmp_path, {"zheng": wrong}), Recorder()
    with pytest.raises(errors.WrongCredentials):
        archive(settings, "zheng", recorder)
    assert recorder.of("login_refused") == ["zheng"]
    assert person_counters(mock_portal, "zheng")["password_logins"] == 0


def test_a_person_needed_for_the_sms_code_is_told_to_the_run_events_before_anything_is_typed(
    mock_portal: MockPortal, tmp_path: Path
) -> None:
    nobody = mock_persons(mock_portal, first=2)["wu"].model_copy(update={"sms": "prompt"})  # no terminal, no source
    settings, recorder = firm_settings(mock_portal, tmp_path, {"wu": nobody}), Recorder()
    with pytest.raises(errors.NeedsPerson):
        archive(settings, "wu", recorder)
    assert recorder.of("person_needed") == [("wu", "sms")]
    assert person_counters(mock_portal, "wu")["sms_sent"] == 0
