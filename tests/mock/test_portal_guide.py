"""docs/mock-portal.md cannot drift from the mock: its generated tables are current, its Python blocks are the
example tests' code verbatim or run as they are, its scenario files load, its commands exist."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from agent.cli import cli
from fixtures.portal import guide
from fixtures.portal.faults import KIND_HELP, FaultKind
from fixtures.portal.scenario import load_scenario
from fixtures.portal.signals import SIGNAL_HELP, SessionSignal

EXAMPLES = Path(__file__).with_name("test_portal_guide_examples.py")
BLOCK = re.compile(r"^```(?P<lang>\w+)\n(?P<code>.*?)^```$", re.DOTALL | re.MULTILINE)


def blocks(lang: str) -> list[str]:
    text = guide.GUIDE.read_text(encoding="utf-8")
    return [found["code"] for found in BLOCK.finditer(text) if found["lang"] == lang]


def test_generated_tables_are_current() -> None:
    text = guide.GUIDE.read_text(encoding="utf-8")
    assert guide.render(text) == text, "stale tables: run python -m fixtures.portal.guide"
    assert set(guide.SECTIONS) == set(re.findall(r"<!-- generated:([a-z-]+) -->", text))


def test_every_fault_kind_and_signal_is_explained() -> None:
    assert set(KIND_HELP) == set(FaultKind.__args__)  # type: ignore[attr-defined]
    assert set(SIGNAL_HELP) == set(SessionSignal.__args__)  # type: ignore[attr-defined]


def test_python_blocks_are_the_example_tests_or_run() -> None:
    examples = EXAMPLES.read_text(encoding="utf-8")
    shown = [code for code in blocks("python") if code in examples]
    for code in blocks("python"):
        if code not in examples:
            exec(compile(code, "docs/mock-portal.md", "exec"), {"__name__": "guide_block"})  # noqa: S102
    shown_tests = set(re.findall(r"^def (test_\w+)", "".join(shown), re.MULTILINE))
    assert shown_tests == set(re.findall(r"^def (test_\w+)", examples, re.MULTILINE))


def test_scenario_files_load(tmp_path: Path) -> None:
    for index, code in enumerate(blocks("toml")):
        path = tmp_path / f"scenario-{index}.toml"
        path.write_text(code, encoding="utf-8")
        assert load_scenario(path).faults


@pytest.mark.parametrize(
    "line", [line for code in blocks("sh") for line in code.splitlines() if line.strip()]
)
def test_commands_exist(line: str) -> None:
    words = line.split("#")[0].split()
    if words[0] == "fapiao":
        command = cli.commands[words[1]]  # type: ignore[attr-defined]
        options = {option for param in command.params for option in param.opts}
        assert {word for word in words if word.startswith("--")} <= options
    else:
        assert words[:2] == ["python", "-m"] and importlib.util.find_spec(words[2]) is not None
