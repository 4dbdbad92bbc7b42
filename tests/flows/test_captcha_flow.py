"""Image captcha on the login page: solved through a pluggable solver; a wrong answer is not a wrong password."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from agentkit import DEMO_MOBILE, SettingsFactory, login_record, run_job

from agent import errors
from fixtures.pytest_plugin import MockPortal


def solver_script(tmp_path: Path, body: str) -> str:
    """A `command:` captcha solver: gets the image path, prints an answer."""
    script = tmp_path / "solver.py"
    script.write_text(body, encoding="utf-8")
    return f"command:{sys.executable} {script}"


@pytest.mark.mock_portal(scenario="captcha", invoices_per_month=5)
def test_command_solver_answers_the_captcha(mock_portal: MockPortal, agent_settings: SettingsFactory, tmp_path: Path) -> None:
    # The test's solver peeks at the mock's answer; a user's would run OCR or ask a service.
    body = (
        "import json, sys, urllib.request\n"
        "assert open(sys.argv[1], 'rb').read(4) == b'\\x89PNG'\n"
        f"print(json.load(urllib.request.urlopen('{mock_portal.url}/__mock__/captcha?id=latest'))['answer'])\n"
    )
    settings = agent_settings(captcha=solver_script(tmp_path, body))
    run_job(settings, login_only=True)
    assert login_record(mock_portal, DEMO_MOBILE)["attempts"] == 1


@pytest.mark.mock_portal(scenario="captcha", invoices_per_month=5)
def test_wrong_captcha_answers_are_bounded_and_never_count_as_passwords(
    mock_portal: MockPortal, agent_settings: SettingsFactory, tmp_path: Path
) -> None:
    settings = agent_settings(captcha=solver_script(tmp_path, "print('XXXX')\n"))
    with pytest.raises(errors.NeedsPerson, match="rejected 3 captcha answers"):
        run_job(settings, login_only=True)
    assert login_record(mock_portal, DEMO_MOBILE) == {"attempts": 3, "wrong_passwords": 0, "locked": False}


@pytest.mark.mock_portal(scenario="captcha", invoices_per_month=5)
def test_captcha_prompt_in_a_scheduled_run_needs_a_person(agent_settings: SettingsFactory) -> None:
    with pytest.raises(errors.NeedsPerson, match="image captcha"):
        run_job(agent_settings(captcha="prompt"), login_only=True)


@pytest.mark.mock_portal(scenario="captcha", invoices_per_month=5)
def test_ocr_solver_reads_the_captcha(mock_portal: MockPortal, agent_settings: SettingsFactory) -> None:
    pytest.importorskip("ddddocr", reason="the OCR solver is the optional `ocr` extra")
    run_job(agent_settings(captcha="ocr"), login_only=True)
    assert login_record(mock_portal, DEMO_MOBILE)["wrong_passwords"] == 0
