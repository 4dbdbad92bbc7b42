"""RunEvents: listeners get the events they have methods for, in order; a failing listener is skipped."""

from __future__ import annotations

import logging

import pytest

from agent import errors
from agent.events import EVENT_NAMES, RunEvents, RunListener
from agent.records import Direction, RunSummary


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[object, ...]] = []

    def listed(self, company: str, direction: Direction, count: int) -> None:
        self.seen.append(("listed", company, direction, count))

    def company_finished(self, company: str, summary: RunSummary) -> None:
        self.seen.append(("finished", company, summary.listed))


class Broken:
    def listed(self, company: str, direction: Direction, count: int) -> None:
        raise RuntimeError("mail server down")


def test_a_listener_receives_only_the_events_it_has_methods_for() -> None:
    recorder = Recorder()
    events = RunEvents(recorder)
    events.started("alice", "91310000000000001X")
    events.listed("91310000000000001X", Direction.issued, 20)
    events.company_finished("91310000000000001X", RunSummary(listed=20))
    assert recorder.seen == [("listed", "91310000000000001X", Direction.issued, 20), ("finished", "91310000000000001X", 20)]


def test_a_failing_listener_is_logged_and_the_others_still_hear(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    events = RunEvents(Broken(), recorder)
    with caplog.at_level(logging.WARNING, logger="agent.events"):
        events.listed("c1", Direction.received, 3)
    assert recorder.seen == [("listed", "c1", Direction.received, 3)]
    assert "Broken failed on listed" in caplog.text


def test_an_object_that_listens_to_nothing_is_refused() -> None:
    with pytest.raises(TypeError, match="listens to no run event"):
        RunEvents().connect(object())


def test_disconnected_listeners_hear_nothing_more() -> None:
    recorder = Recorder()
    events = RunEvents(recorder)
    events.disconnect(recorder)
    events.listed("c1", Direction.issued, 1)
    assert recorder.seen == []


def test_every_event_of_the_contract_is_emitted_by_name() -> None:
    assert {"started", "listed", "file_done", "company_finished", "person_needed", "login_refused", "portal_down"} <= set(EVENT_NAMES)
    heard: list[str] = []

    class All(RunListener):
        def __getattribute__(self, name: str) -> object:
            if name in EVENT_NAMES:
                return lambda *args: heard.append(name)
            return super().__getattribute__(name)

    events = RunEvents(All())
    events.person_needed("alice", "sms", "code sent to 138****0001")
    events.login_refused("alice", errors.WrongCredentials("密码错误", "2035"))
    events.portal_down("alice", errors.PortalUnavailable("down"))
    assert heard == ["person_needed", "login_refused", "portal_down"]
