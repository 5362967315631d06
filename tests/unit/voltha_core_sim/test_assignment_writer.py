"""assignment_writer.py: the assignment from the health of the cores, written only by the leader."""

from __future__ import annotations

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import parse_assignment
from ansible_collections.voltha.envoy.plugins.module_utils._assignment.store import AssignmentStore
from tests.unit.voltha_core_sim.fakes import FakeConsul, election, health_entry
from voltha_core_sim.assignment_writer import AssignmentWriter, assign_stores, assignment_from_health, frozen
from voltha_core_sim.election import (
    NotLeader,
)


def test_assignment_from_health():
    entries = [health_entry("core-2", port=50558, prefix="vcore2"), health_entry("core-1", port=50557),
               health_entry("core-3", host="", prefix="vcore3")]
    cores, skipped = assignment_from_health(entries)
    assert cores == {"core-1": {"id": "core-1", "host": "127.0.0.1", "port": 50557},
                     "vcore2": {"id": "core-2", "host": "127.0.0.1", "port": 50558},
                     "vcore3": {"id": "core-3", "host": "10.9.9.9", "port": 50556}}  # the node's address
    assert skipped == []
    assert parse_assignment(cores)
    assert frozen(cores) == frozen(dict(reversed(list(cores.items()))))


def test_bad_instances_are_left_out_and_reported():
    entries = [health_entry("core-1", port=50557, prefix="p"), health_entry("core-2", host="bad host"),
               health_entry("core-3", port=70000), health_entry("core-4", prefix="p")]
    cores, skipped = assignment_from_health(entries)
    assert list(cores) == ["p"]
    assert len(skipped) == 3
    assert "field 'host' must be an IP address or a DNS name" in skipped[0]
    assert "field 'port'" in skipped[1]
    assert "prefix also used by core 'core-1'" in skipped[2]
    assert assignment_from_health([]) == ({}, [])


def test_only_the_leader_writes_and_an_empty_list_writes_nothing():
    consul = FakeConsul()
    core = election(consul)
    store = AssignmentStore(core.guarded_kv(), "assignment")
    writer = AssignmentWriter(store, lambda: core.is_leader)
    cores, _ = assignment_from_health([health_entry("core-1", port=50557), health_entry("core-2", port=50558)])
    assert writer.write(cores) is None  # not the leader yet
    assert "assignment" not in consul.kv.items
    core.poll(0, "5s")
    outcome = writer.write(cores)
    assert outcome.written
    assert parse_assignment(consul.kv.items["assignment"]["Value"]) == parse_assignment(cores)
    assert writer.write(cores).written is False  # unchanged: no write
    assert writer.write({}) is None  # no healthy core: the last assignment stays
    consul.kv.items["lock"]["Session"] = "someone-else"
    with pytest.raises(NotLeader):
        writer.write({"core-1": cores["core-1"]})
    assert writer.write(cores) is None


# Logging once per state, and the command line.


def test_two_instances_of_a_core_the_newest_registration_wins():
    old = health_entry("vcore-1", host="10.0.1.4")
    new = health_entry("vcore-1", host="10.0.1.9")
    old["Service"].update(ID="vcore-1@10.0.1.4:50556", CreateIndex=10)
    new["Service"].update(ID="vcore-1@10.0.1.9:50556", CreateIndex=42)
    for entries in ([old, new], [new, old]):
        cores, skipped = assignment_from_health(entries)
        assert cores == {"vcore-1": {"id": "vcore-1", "host": "10.0.1.9", "port": 50556}}
        assert len(skipped) == 1 and "10.0.1.4" not in str(cores)


def test_two_instances_of_a_core_the_last_started_wins_over_a_newer_registration():
    """A node back after the swarm started its core elsewhere: its agent registers the old instance
    again (the newer registration), but the process started last keeps the core."""
    moved = health_entry("vcore-1", host="10.0.1.9")
    returned = health_entry("vcore-1", host="10.0.1.4")
    moved["Service"].update(ID="vcore-1@10.0.1.9:50556~b", CreateIndex=42)
    moved["Service"]["Meta"]["started"] = "1796598097.250"
    returned["Service"].update(ID="vcore-1@10.0.1.4:50556~a", CreateIndex=57)
    returned["Service"]["Meta"]["started"] = "1796598001.125"
    for entries in ([moved, returned], [returned, moved]):
        cores, skipped = assignment_from_health(entries)
        assert cores == {"vcore-1": {"id": "vcore-1", "host": "10.0.1.9", "port": 50556}}
        assert skipped == ["core 'vcore-1': prefix also used by core 'vcore-1', left out 'vcore-1'"]


def core(core_id, port=50556):
    return {"id": core_id, "host": "10.0.0.1", "port": port}


def test_stores_of_gone_cores_go_to_the_healthy_core_with_fewest():
    homes = {"a": core("a", 1), "b": core("b", 2)}
    wanted = assign_stores(homes, ["a", "c", "d", "e"])
    assert wanted["a"] == core("a", 1) and wanted["b"] == core("b", 2)
    assert [wanted[p]["id"] for p in ("c", "d", "e")] == ["a", "b", "a"]
    assert parse_assignment(wanted)  # one core under several prefixes is a valid assignment


def test_a_store_stays_with_its_healthy_core_and_returns_home():
    homes = {"a": core("a", 1), "b": core("b", 2)}
    assert assign_stores(homes, ["c"], {"c": core("b", 2)})["c"]["id"] == "b"
    assert assign_stores(homes, ["c"], {"c": core("gone", 9)})["c"]["id"] == "a"
    # The store's own core is healthy again: it is its home, whoever held it.
    assert assign_stores({**homes, "c": core("c", 3)}, ["c"], {"c": core("b", 2)})["c"]["id"] == "c"
    # A store without devices whose core is gone is dropped; no healthy core, nothing to give.
    assert set(assign_stores(homes, [], {"c": core("b", 2)})) == {"a", "b"}
    assert assign_stores({}, ["c"]) == {}
