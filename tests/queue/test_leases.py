"""Leases and records on both stores: one holder at a time, renewal by the holder only, expiry frees a lease."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from queuekit import BACKENDS, fresh_redis, queue_settings

from agent.leases import SharedState
from agent.queue import build_huey, build_state


@pytest.fixture(params=BACKENDS)
def state(request: pytest.FixtureRequest, tmp_path: Path) -> SharedState:
    if request.param == "redis":
        fresh_redis()
    settings = queue_settings(tmp_path, request.param)
    return build_state(settings, build_huey(settings))


def test_a_lease_has_one_holder_until_released(state: SharedState) -> None:
    assert state.acquire("person:host:ann", "a" * 32, {"worker": "one"}, ttl=10)
    assert not state.acquire("person:host:ann", "b" * 32, {"worker": "two"}, ttl=10)
    assert state.acquire("person:host:bob", "b" * 32, {"worker": "two"}, ttl=10)  # another person: free
    holder = state.holder("person:host:ann")
    assert holder is not None and holder.token == "a" * 32 and holder.info == {"worker": "one"}
    state.release("person:host:ann", "b" * 32)  # not the holder's token: nothing happens
    assert state.holder("person:host:ann") is not None
    state.release("person:host:ann", "a" * 32)
    assert state.holder("person:host:ann") is None
    assert state.acquire("person:host:ann", "b" * 32, {}, ttl=10)


def test_a_lease_not_renewed_runs_out_and_its_old_holder_cannot_renew_it(state: SharedState) -> None:
    assert state.acquire("person:host:ann", "a" * 32, {}, ttl=0.5)
    assert state.renew("person:host:ann", "a" * 32, ttl=0.5)
    assert not state.renew("person:host:ann", "b" * 32, ttl=0.5)
    time.sleep(0.7)
    assert state.holder("person:host:ann") is None
    assert state.acquire("person:host:ann", "b" * 32, {}, ttl=10)
    assert not state.renew("person:host:ann", "a" * 32, ttl=10)  # the dead holder woke up: too late
    assert state.holder("person:host:ann").token == "b" * 32  # type: ignore[union-attr]


def test_renewal_keeps_a_lease_past_its_first_expiry(state: SharedState) -> None:
    assert state.acquire("person:host:ann", "a" * 32, {}, ttl=0.6)
    for _ in range(4):
        time.sleep(0.2)
        assert state.renew("person:host:ann", "a" * 32, ttl=0.6)
    assert not state.acquire("person:host:ann", "b" * 32, {}, ttl=1)


def test_records_are_taken_by_one_caller_and_expire(state: SharedState) -> None:
    state.put("waiting", "ann", {"code": "x"})
    state.put("waiting", "bob", {"code": "y"}, ttl=0.3)
    assert state.records("waiting") == {"ann": {"code": "x"}, "bob": {"code": "y"}}
    assert state.take("waiting", "ann") == {"code": "x"}
    assert state.take("waiting", "ann") is None
    time.sleep(0.5)
    assert state.records("waiting") == {}
    assert state.claim("schedule:0:202512030200", ttl=5)
    assert not state.claim("schedule:0:202512030200", ttl=5)
