"""The core simulator's Consul logic with fakes: registration, election, the assignment it writes."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from consul import ConsulException
from consul.exceptions import ClientError

from ansible_collections.voltha.envoy.plugins.module_utils.assignment import parse_assignment
from ansible_collections.voltha.envoy.plugins.module_utils.assignment_store import AssignmentStore
from voltha_core_sim.__main__ import build_parser, membership_config
from voltha_core_sim.assignment_writer import AssignmentWriter, assignment_from_health, frozen
from voltha_core_sim.election import (
    FOLLOWER,
    FREE,
    LEADER,
    LeaderElection,
    NotLeader,
    SessionInvalid,
    lock_role,
)
from voltha_core_sim.registration import ServiceRegistration, check_duration, service_definition
from voltha_core_sim.state_log import StateLog


class FakeKV:
    """Consul's KV with ModifyIndex, sessions holding locks, and cas."""

    def __init__(self, consul):
        self.consul = consul
        self.items: dict[str, dict] = {}

    def get(self, key, index=None, wait=None):
        self.consul.gets.append((key, index, wait))
        item = self.items.get(key)
        return str(self.consul.index), (dict(item) if item else None)

    def _bump(self):
        self.consul.index += 1
        return self.consul.index

    def put(self, key, value, cas=None, acquire=None):
        if self.consul.fail_next:
            raise self.consul.fail_next.pop(0)
        item = self.items.get(key)
        if acquire is not None:
            if acquire not in self.consul.sessions:
                raise ConsulException(f'500 invalid session "{acquire}"')
            if item and item.get("Session") not in (None, acquire):
                return False
        if cas is not None and (item["ModifyIndex"] if item else 0) != cas:
            return False
        new = {"Key": key, "Value": value.encode() if isinstance(value, str) else value, "ModifyIndex": self._bump()}
        if acquire is not None:
            new["Session"] = acquire
        elif item and item.get("Session"):
            new["Session"] = item["Session"]
        self.items[key] = new
        return True

    def delete(self, key, cas=None):
        self.items.pop(key, None)
        return True


class FakeTxn:
    def __init__(self, consul):
        self.consul = consul
        self.calls = []

    def put(self, operations):
        self.calls.append(operations)
        kv = self.consul.kv
        errors = []
        for op in operations:
            op = op["KV"]
            item = kv.items.get(op["Key"])
            if op["Verb"] == "check-session" and (item or {}).get("Session") != op["Session"]:
                errors.append(f'failed session check for key "{op["Key"]}"')
            if op["Verb"] in ("cas", "delete-cas") and (item["ModifyIndex"] if item else 0) != op["Index"]:
                errors.append(f'failed to set key "{op["Key"]}", index is stale')
        if errors:
            raise ClientError("409 " + json.dumps({"Errors": errors}))
        for op in operations:
            op = op["KV"]
            if op["Verb"] == "cas":
                kv.items[op["Key"]] = {"Key": op["Key"], "Value": base64.b64decode(op["Value"]),
                                       "ModifyIndex": kv._bump()}
        return {"Results": []}


class FakeSession:
    def __init__(self, consul):
        self.consul = consul
        self.created = []

    def create(self, **kwargs):
        if self.consul.session_error:
            raise self.consul.session_error
        session_id = f"session-{len(self.created)}"
        self.created.append(kwargs)
        self.consul.sessions.add(session_id)
        return session_id

    def destroy(self, session_id):
        self.consul.invalidate(session_id)
        return True


class FakeAgent:
    def __init__(self):
        self.entries: dict[str, dict] = {}
        self.registrations = []
        self.service = self

    def services(self):
        return self.entries

    def register(self, **kwargs):
        self.registrations.append(kwargs)
        self.entries[kwargs["service_id"]] = {"ID": kwargs["service_id"], "Service": kwargs["name"],
                                              "Address": kwargs["address"], "Port": kwargs["port"],
                                              "Meta": kwargs["meta"]}

    def deregister(self, service_id):
        self.entries.pop(service_id, None)
        return True


class FakeConsul:
    def __init__(self):
        self.index = 10
        self.gets = []
        self.sessions: set[str] = set()
        self.session_error = None
        self.fail_next: list[Exception] = []
        self.kv = FakeKV(self)
        self.txn = FakeTxn(self)
        self.session = FakeSession(self)
        self.agent = FakeAgent()

    def invalidate(self, session_id):
        """What Consul does when a session's check fails: release its locks."""
        self.sessions.discard(session_id)
        for item in self.kv.items.values():
            if item.get("Session") == session_id:
                del item["Session"]
                item["ModifyIndex"] = self.kv._bump()


def health_entry(core_id, host="127.0.0.1", port=50556, prefix=None, node_address="10.9.9.9"):
    meta = {"core_id": core_id}
    if prefix is not None:
        meta["prefix"] = prefix
    return {"Node": {"Address": node_address},
            "Service": {"ID": core_id, "Service": "vcore", "Address": host, "Port": port, "Meta": meta}}


# Registration.

def test_service_definition_has_a_grpc_check_and_the_prefix():
    definition = service_definition("core-1", "10.0.0.5", 50557, "vcore1", check_interval="1s")
    assert definition["name"] == "vcore" and definition["service_id"] == "core-1"
    assert (definition["address"], definition["port"]) == ("10.0.0.5", 50557)
    assert definition["meta"] == {"core_id": "core-1", "prefix": "vcore1"}
    assert definition["check"] == {"GRPC": "10.0.0.5:50557", "GRPCUseTLS": False, "Interval": "1s", "Timeout": "1s",
                                   "DeregisterCriticalServiceAfter": "1m"}


@pytest.mark.parametrize("text", ["1s", "500ms", "1m30s", "0.5s"])
def test_durations_are_accepted(text):
    assert check_duration(text) == text


@pytest.mark.parametrize("text", ["", "1", "s", "1 s", "-1s", "1d"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError, match="duration"):
        check_duration(text)


def test_registration_registers_once_and_again_when_forgotten_or_different():
    consul = FakeConsul()
    registration = ServiceRegistration(consul, service_definition("core-1", "127.0.0.1", 50557, "p1"))
    assert registration.ensure() is True
    assert registration.ensure() is False  # already there
    consul.agent.entries.clear()  # a restarted dev agent
    assert registration.ensure() is True
    consul.agent.entries["core-1"]["Port"] = 1  # an older registration under our id
    assert registration.ensure() is True
    assert len(consul.agent.registrations) == 3
    assert registration.check_id == "service:core-1"
    registration.deregister()
    assert consul.agent.entries == {}


# Election.

@pytest.mark.parametrize("holder, ours, role", [
    (None, "s1", FREE), ("", "s1", FREE), ("s1", "s1", LEADER), ("s2", "s1", FOLLOWER), ("s2", None, FOLLOWER),
])
def test_lock_role(holder, ours, role):
    assert lock_role(holder, ours) == role


def election(consul, core_id="core-1"):
    return LeaderElection(consul, core_id, "lock", checks=("serfHealth", f"service:{core_id}"), lock_delay=0)


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

def test_state_log_logs_each_change_once(caplog):
    states = StateLog(logging.getLogger("test.core_sim"))
    with caplog.at_level(logging.INFO, logger="test.core_sim"):
        assert states.report("election", "error:X", "down")
        assert not states.report("election", "error:X", "down again")
        assert states.report("election", "leader", "leader")
        assert states.report("health", "error:X", "down")
    assert [r.getMessage() for r in caplog.records] == ["election: down", "election: leader", "health: down"]
    assert states.state("election") == "leader"


def test_command_line_to_membership_config():
    args = build_parser().parse_args(["--core-id", "core-1", "--port", "50557", "--consul-addr", "10.0.0.2:8501",
                                      "--check-interval", "2s"])
    config, settings = membership_config(args, 50557)
    assert (config.core_id, config.host, config.port, config.prefix) == ("core-1", "127.0.0.1", 50557, "core-1")
    assert (config.service_name, config.lock_key, config.check_interval) == ("vcore", "service/voltha/leader", "2s")
    assert config.assignment_key == "service/voltha/data/core/assignment"
    assert (settings.host, settings.port) == ("10.0.0.2", 8501)


@pytest.mark.parametrize("argv, message", [
    (["--host", "0.0.0.0"], "--advertise-host"),
    (["--check-interval", "soon"], "--check-interval"),
    (["--consul-addr", "host:port"], "bad port"),
])
def test_bad_command_lines_are_refused(argv, message):
    base = {"--consul-addr": "127.0.0.1:8500"}
    for flag, value in zip(argv[::2], argv[1::2]):
        base[flag] = value
    args = build_parser().parse_args(["--core-id", "c"] + [x for kv in base.items() for x in kv])
    with pytest.raises(ValueError, match=message):
        membership_config(args, 1)


def test_advertise_host_for_a_wildcard_listener():
    args = build_parser().parse_args(["--core-id", "c", "--host", "0.0.0.0", "--advertise-host", "10.0.0.7",
                                      "--consul-addr", "127.0.0.1:8500", "--prefix", "vcore7"])
    config, _ = membership_config(args, 50556)
    assert (config.host, config.prefix) == ("10.0.0.7", "vcore7")


def test_core_id_from_the_environment(monkeypatch):
    monkeypatch.setenv("VOLTHA_CORE_ID", "vcore-3")
    assert build_parser().parse_args([]).core_id == "vcore-3"


def test_advertise_host_from_the_host_name(monkeypatch):
    import voltha_core_sim.__main__ as cli

    monkeypatch.setattr(cli.socket, "gethostname", lambda: "vcore-2")
    monkeypatch.setattr(cli.socket, "gethostbyname", lambda name: {"vcore-2": "10.0.1.9"}[name])
    args = build_parser().parse_args(["--core-id", "c", "--host", "0.0.0.0", "--advertise-host", "@hostname",
                                      "--consul-addr", "127.0.0.1:8500"])
    config, dummy = membership_config(args, 50556)
    assert config.host == "10.0.1.9"


def test_each_instance_has_its_own_service_id():
    definition = service_definition("core-1", "10.0.0.5", 50557, "vcore1", instance_id="core-1@10.0.0.5:50557")
    assert definition["service_id"] == "core-1@10.0.0.5:50557"
    assert definition["meta"] == {"core_id": "core-1", "prefix": "vcore1"}


def test_two_instances_of_a_core_the_newest_registration_wins():
    old = health_entry("vcore-1", host="10.0.1.4")
    new = health_entry("vcore-1", host="10.0.1.9")
    old["Service"].update(ID="vcore-1@10.0.1.4:50556", CreateIndex=10)
    new["Service"].update(ID="vcore-1@10.0.1.9:50556", CreateIndex=42)
    for entries in ([old, new], [new, old]):
        cores, skipped = assignment_from_health(entries)
        assert cores == {"vcore-1": {"id": "vcore-1", "host": "10.0.1.9", "port": 50556}}
        assert len(skipped) == 1 and "10.0.1.4" not in str(cores)
