"""cluster_check.py: what differs between the running cores, the assignment and the answers."""

from __future__ import annotations

import pytest

from voltha_core_sim.cluster_check import differences, main

RUNNING = {"vcore-1", "vcore-2", "vcore-3"}
ANSWERS = {"vcore-1": 1, "vcore-2": 1, "vcore-3": 1}


def test_a_whole_cluster_has_no_differences():
    assert differences(RUNNING, ["vcore-1", "vcore-2", "vcore-3"], ANSWERS, []) == []
    assert differences(RUNNING, None, ANSWERS, []) == []  # no Consul to compare with


def test_a_stale_entry_and_a_missing_core_are_named():
    """The lab's silent outage: two stale entries, one pointing at an address another core took."""
    found = differences(RUNNING, ["vcore-2", "vcore-3-old"], {"vcore-2": 6}, [])
    assert found == ["the assignment names cores that do not run: ['vcore-3-old']",
                     "the assignment lacks running cores: ['vcore-1', 'vcore-3']",
                     "no CreateDevice reached ['vcore-1', 'vcore-3'] (answers: {'vcore-2': 6})"]


def test_failed_calls_and_strangers_are_named():
    found = differences(RUNNING, None, dict(ANSWERS, intruder=1), ["UNAVAILABLE: no healthy upstream"])
    assert found == ["cores that should not run answered: ['intruder']",
                     "1 call(s) failed, e.g. UNAVAILABLE: no healthy upstream"]


def test_a_core_serving_several_stores_is_whole():
    assert differences({"a"}, ["a"], {"a": 1}, []) == []


def test_no_cores_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["127.0.0.1:1", "--cores", ","])
    assert raised.value.code == 2 and "--cores names no core" in capsys.readouterr().err


def test_consul_must_report_its_raft_peers_and_a_leader():
    from voltha_core_sim.cluster_check import raft_differences

    peers = ["10.0.1.3:8300", "10.0.1.4:8300", "10.0.1.5:8300"]
    assert raft_differences(peers, "10.0.1.4:8300", 3) == []
    assert raft_differences(peers[:2], "", 3) == [
        "Consul reports 2 Raft peer(s), not 3: ['10.0.1.3:8300', '10.0.1.4:8300']", "Consul reports no Raft leader"]
