"""election.py: the leader lock, sessions and the leader's KV writes."""

from __future__ import annotations

import base64
import json

import pytest
from consul import ConsulException

from tests.unit.voltha_core_sim.fakes import FakeConsul, election
from voltha_core_sim.election import (
    FOLLOWER,
    FREE,
    LEADER,
    NotLeader,
    SessionInvalid,
    lock_role,
)


@pytest.mark.parametrize("holder, ours, role", [
    (None, "s1", FREE), ("", "s1", FREE), ("s1", "s1", LEADER), ("s2", "s1", FOLLOWER), ("s2", None, FOLLOWER),
])
def test_lock_role(holder, ours, role):
    assert lock_role(holder, ours) == role


def test_the_first_core_leads_and_the_second_follows():
    consul = FakeConsul()
    first, second = election(consul, "core-1"), election(consul, "core-2")
    assert first.poll(0, "5s")[1] == LEADER and first.is_leader
    assert consul.session.created[0] == {"name": "voltha-core-core-1", "checks": ["serfHealth", "service:core-1"],
                                         "lock_delay": 0, "behavior": "release"}
    assert json.loads(consul.kv.items["lock"]["Value"]) == {"core_id": "core-1"}
    assert second.poll(0, "5s")[1] == FOLLOWER and not second.is_leader
    assert consul.gets[-1] == ("lock", None, "5s")
    assert second.poll(11, "5s")[1] == FOLLOWER
    assert consul.gets[-1] == ("lock", 11, "5s")  # a blocking query on the index it was given


def test_a_follower_takes_over_when_the_leader_session_goes():
    consul = FakeConsul()
    first, second = election(consul, "core-1"), election(consul, "core-2")
    first.poll(0, "5s")
    second.poll(0, "5s")
    consul.invalidate(first.session_id)  # the leader's check failed
    assert second.poll(0, "5s")[1] == LEADER
    assert first.poll(0, "5s")[1] == FOLLOWER  # core-2 holds the lock now
    assert not first.is_leader


def test_an_invalid_session_is_replaced():
    consul = FakeConsul()
    core = election(consul)
    core.poll(0, "5s")
    consul.invalidate(core.session_id)
    with pytest.raises(SessionInvalid):
        core.poll(0, "5s")
    assert core.session_id is None and not core.is_leader
    assert core.poll(0, "5s")[1] == LEADER
    assert core.session_id == "session-1"


def test_no_session_while_the_check_is_critical():
    consul = FakeConsul()
    consul.session_error = ConsulException("500 Check 'service:core-1' is in critical state")
    core = election(consul)
    with pytest.raises(ConsulException):
        core.poll(0, "5s")
    assert not core.is_leader and consul.kv.items == {}
    consul.session_error = None
    assert core.poll(0, "5s")[1] == LEADER


def test_a_leader_that_cannot_reach_consul_is_no_leader():
    consul = FakeConsul()
    core = election(consul)
    core.poll(0, "5s")
    consul.kv.get = lambda *a, **k: (_ for _ in ()).throw(ConnectionError("refused"))
    with pytest.raises(ConnectionError):
        core.poll(12, "5s")
    assert not core.is_leader


def test_resign_destroys_the_session_and_frees_the_lock():
    consul = FakeConsul()
    core = election(consul)
    core.poll(0, "5s")
    core.resign()
    assert not core.is_leader and core.session_id is None
    assert "Session" not in consul.kv.items["lock"]


# Writes guarded by the lock.

def test_leader_kv_writes_with_check_session_and_cas():
    consul = FakeConsul()
    core = election(consul)
    core.poll(0, "5s")
    kv = core.guarded_kv()
    assert kv.put("assignment", '{"a": 1}', cas=0) is True
    check, write = consul.txn.calls[-1]
    assert check == {"KV": {"Verb": "check-session", "Key": "lock", "Session": core.session_id}}
    assert write["KV"]["Verb"] == "cas" and write["KV"]["Index"] == 0
    assert base64.b64decode(write["KV"]["Value"]) == b'{"a": 1}'
    assert kv.put("assignment", '{"a": 2}', cas=0) is False  # lost the check-and-set: the store retries


def test_leader_kv_refuses_once_the_lock_is_lost():
    consul = FakeConsul()
    core = election(consul)
    core.poll(0, "5s")
    kv = core.guarded_kv()
    consul.kv.items["lock"]["Session"] = "someone-else"  # taken over before we noticed
    with pytest.raises(NotLeader):
        kv.put("assignment", "{}", cas=0)
    assert not core.is_leader
    calls = len(consul.txn.calls)
    with pytest.raises(NotLeader):
        kv.put("assignment", "{}", cas=0)  # not even tried
    assert len(consul.txn.calls) == calls


# The assignment from the healthy cores.
