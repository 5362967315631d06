"""membership.py: which health entries pass, and the leader pruning instances that keep failing."""

from __future__ import annotations

import json

from ansible_collections.voltha.envoy.plugins.module_utils._consul.connection import ConsulSettings
from voltha_core_sim.election import LEADER
from voltha_core_sim.membership import CoreMembership, MembershipConfig, is_passing


def entry(service_id, node="node-1", *statuses):
    return {"Node": {"Node": node}, "Service": {"ID": service_id},
            "Checks": [{"Status": status} for status in statuses]}


def test_an_entry_passes_only_when_every_check_passes():
    assert is_passing(entry("a", "n", "passing", "passing"))
    assert not is_passing(entry("a", "n", "passing", "critical"))
    assert not is_passing(entry("a", "n", "warning"))


class FakeAgentClient:
    def __init__(self):
        self.deregistered, self.catalog_removed = [], []
        self.agent = self
        self.service = self
        self.catalog = self
        self.http = self

        self.held = {}  # the agent's own services

    def prepare_headers(self, token=None):
        return {"X-Consul-Token": "core"}

    def get(self, callback, path, headers=None):
        assert path == "/v1/agent/self" and headers == {"X-Consul-Token": "core"}
        return {"Config": {"NodeName": "node-1"}}

    def services(self):
        return self.held

    def deregister(self, service_id):  # agent.service.deregister
        self.deregistered.append(service_id)
        return True

    def put(self, callback, path, headers=None, data=None):  # PUT /v1/catalog/deregister
        assert path == "/v1/catalog/deregister" and headers == {"X-Consul-Token": "core"}
        body = json.loads(data)
        self.catalog_removed.append((body["Node"], body["ServiceID"]))
        return True


def membership(monkeypatch, now):
    member = CoreMembership(MembershipConfig("core-1", "127.0.0.1", 50556, prune_after=5.0, run="r1"),
                            ConsulSettings())
    member._prune_client = FakeAgentClient()
    monkeypatch.setattr("voltha_core_sim.membership.time.monotonic", lambda: now[0])
    return member


def test_the_leader_prunes_instances_failing_for_prune_after(monkeypatch):
    now = [100.0]
    member = membership(monkeypatch, now)
    assert member.instance == "core-1@127.0.0.1:50556~r1"
    ghosts = [entry("core-2@10.0.0.7:50556~old", "node-1", "critical"),
              entry("core-3@10.0.0.8:50556~old", "node-9", "critical"),
              entry(member.instance, "node-1", "critical")]  # ours: the registration loop looks after it
    member._note_failing(ghosts)
    assert set(member.failing) == {"core-2@10.0.0.7:50556~old", "core-3@10.0.0.8:50556~old"}
    assert member._prune() is None  # a follower prunes nothing
    member.election.role = LEADER
    now[0] = 103.0
    member._note_failing(ghosts)  # still failing: the first time seen is kept
    assert member._prune() == 2.0
    now[0] = 105.0
    assert member._prune() is None
    client = member._prune_client
    assert client.deregistered == ["core-2@10.0.0.7:50556~old"]  # registered with our agent
    assert client.catalog_removed == [("node-9", "core-3@10.0.0.8:50556~old")]  # another node's
    assert member.failing == {}


def test_an_instance_that_passes_again_is_not_pruned(monkeypatch):
    now = [0.0]
    member = membership(monkeypatch, now)
    member.election.role = LEADER
    member._note_failing([entry("core-2@h:1~x", "node-1", "critical")])
    now[0] = 4.0
    member._note_failing([])
    now[0] = 10.0
    assert member._prune() is None and member._prune_client.deregistered == []


class FailingReader:
    def get(self, *args, **kwargs):
        raise ConnectionRefusedError("consul restarting")


def test_a_failed_health_read_forgets_which_cores_passed(monkeypatch):
    """After Consul comes back (perhaps empty) the leader must not write the cores that passed before."""
    member = membership(monkeypatch, [0.0])
    member.healthy = {"vcore-2": {"id": "core-2", "host": "10.0.0.2", "port": 50556}}
    member._health_reader = FailingReader()
    try:
        member._health_fetch(42, "10s")
    except ConnectionRefusedError:
        pass
    assert member.healthy is None


def test_a_leftover_our_agent_no_longer_has_is_removed_from_the_catalog(monkeypatch):
    """A registration our node's agent lost when it restarted stays in the catalog, passing, and would
    keep its session (and a leader lock) forever: every core clears its own node's."""
    member = membership(monkeypatch, [0.0])
    client = member._prune_client
    client.held = {member.instance: {}, "core-1@10.0.0.9:50556~new": {}}
    mine = entry(member.instance, "node-1", "passing")
    starting = entry("core-1@10.0.0.9:50556~new", "node-1", "passing")  # another instance our agent holds
    leftover = entry("core-1@10.0.0.5:50556~old", "node-1", "passing")
    elsewhere = entry("core-2@10.0.0.6:50556~old", "node-2", "passing")  # another agent's: not ours to judge
    assert member._without_orphans([mine, starting, leftover, elsewhere]) == [mine, starting, elsewhere]
    assert client.catalog_removed == [("node-1", "core-1@10.0.0.5:50556~old")]
    assert client.deregistered == []


def test_looking_for_leftovers_is_skipped_with_no_other_entry_on_our_node(monkeypatch):
    member = membership(monkeypatch, [0.0])
    member._prune_client.services = None  # not asked
    entries = [entry(member.instance, "node-1", "passing"), entry("core-2@h:1~x", "node-2", "passing")]
    assert member._without_orphans(entries) == entries
