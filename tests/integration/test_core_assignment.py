"""voltha.envoy.core_assignment (module and lookup) against a real Consul, through real ansible-playbook."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.store import (
    AssignmentConflictError,
    AssignmentStore,
)
from tests.support.ansible_runner import run_playbook

MODULE = "voltha.envoy.core_assignment"
CORES = [{"prefix": "vcore1", "id": "core-1", "host": "10.0.1.5"},
         {"prefix": "vcore2", "id": "core-2", "host": "10.0.1.6", "port": 50557}]
STORED = {"vcore1": {"id": "core-1", "host": "10.0.1.5", "port": 50556},
          "vcore2": {"id": "core-2", "host": "10.0.1.6", "port": 50557}}


@pytest.fixture
def key(consul_agent):
    name = f"test/core_assignment/{uuid.uuid4().hex}"
    yield name
    consul_agent.client().kv.delete(name)


@pytest.fixture
def kv(consul_agent):
    return consul_agent.client().kv


def stored(kv, key):
    """(parsed value or None, ModifyIndex, raw bytes) as Consul has it."""
    _, item = kv.get(key)
    if item is None:
        return None, 0, None
    return json.loads(item["Value"]), item["ModifyIndex"], item["Value"]


def task(name, consul_agent, key, **args):
    return {"name": name, MODULE: dict(host="127.0.0.1", port=consul_agent.http_port, key=key, **args)}


def lookup_expr(consul_agent, key, extra=""):
    return "{{ lookup('%s', '%s', port=%d%s) }}" % (MODULE, key, consul_agent.http_port, extra)


def assert_ok(run, *names):
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for name in names:
        assert not run[name].get("failed"), run[name]


def test_set_unchanged_add_remove_read_lookup_absent(consul_agent, key, kv, tmp_path):
    run = run_playbook(tmp_path, [
        task("set", consul_agent, key, cores=CORES),
        task("set again", consul_agent, key, cores={c["prefix"]: {k: v for k, v in c.items() if k != "prefix"}
                                                      for c in CORES}),
        task("add one", consul_agent, key, add=[{"prefix": "vcore3", "id": "core-3", "host": "core-3.voltha"}]),
        task("add same", consul_agent, key, add={"vcore3": {"id": "core-3", "host": "core-3.voltha"}}),
        task("remove one", consul_agent, key, remove=["vcore1"]),
        task("remove again", consul_agent, key, remove=["vcore1"]),
        task("read", consul_agent, key, state="read"),
        {"name": "lookup", "ansible.builtin.debug": {"msg": lookup_expr(consul_agent, key)}},
    ])
    assert_ok(run)
    assert run["set"]["changed"] and run["set"]["assignment"] == STORED and run["set"]["conflicts"] == 0
    assert run["set"]["cores"] == [dict(STORED[p], prefix=p) for p in ("vcore1", "vcore2")]
    assert run["set"]["key"] == key and run["set"]["index"] > 0
    assert not run["set again"]["changed"] and run["set again"]["index"] == run["set"]["index"]
    assert run["add one"]["changed"] and sorted(run["add one"]["assignment"]) == ["vcore1", "vcore2", "vcore3"]
    assert run["add one"]["index"] > run["set"]["index"]
    assert not run["add same"]["changed"]
    assert run["remove one"]["changed"] and sorted(run["remove one"]["assignment"]) == ["vcore2", "vcore3"]
    assert not run["remove again"]["changed"]
    assert not run["read"]["changed"] and run["read"]["assignment"] == run["remove one"]["assignment"]
    assert run["read"]["index"] == run["remove one"]["index"]
    # what the module wrote is what Consul has, as canonical JSON, and what the lookup returns
    value, modify_index, raw = stored(kv, key)
    assert value == run["remove one"]["assignment"] and modify_index == run["remove one"]["index"]
    assert raw == json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    assert run["lookup"]["msg"] == value

    run = run_playbook(tmp_path, [task("delete", consul_agent, key, state="absent"),
                                  task("delete again", consul_agent, key, state="absent"),
                                  task("read missing", consul_agent, key, state="read")])
    assert_ok(run)
    assert run["delete"]["changed"] and not run["delete"]["exists"] and run["delete"]["assignment"] == {}
    assert not run["delete again"]["changed"]
    assert run["read missing"]["exists"] is False and run["read missing"]["assignment"] == {}
    assert kv.get(key)[1] is None


def test_reformatted_value_is_not_rewritten(consul_agent, key, kv, tmp_path):
    kv.put(key, json.dumps({"vcore2": {"port": 50557, "host": "10.0.1.6", "id": "core-2"},
                            "vcore1": {"host": "10.0.1.5", "id": "core-1"}}, indent=4))
    _, before_index, before_raw = stored(kv, key)
    run = run_playbook(tmp_path, [task("set", consul_agent, key, cores=CORES)])
    assert_ok(run, "set")
    assert not run["set"]["changed"] and run["set"]["index"] == before_index
    assert stored(kv, key)[1:] == (before_index, before_raw)


def test_check_mode_changes_nothing_in_consul(consul_agent, key, kv, tmp_path):
    kv.put(key, json.dumps(STORED))
    before = stored(kv, key)
    run = run_playbook(tmp_path, [
        task("replace", consul_agent, key, cores=[{"prefix": "x", "id": "x", "host": "10.9.9.9"}]),
        task("add", consul_agent, key, add=[{"prefix": "vcore3", "id": "core-3", "host": "10.0.1.7"}]),
        task("remove", consul_agent, key, remove=["vcore1"]),
        task("delete", consul_agent, key, state="absent"),
        task("create elsewhere", consul_agent, key + "-new", cores=CORES),
    ], check=True)
    assert_ok(run)
    for name in ("replace", "add", "remove", "delete", "create elsewhere"):
        assert run[name]["changed"], name
    assert run["replace"]["assignment"] == {"x": {"id": "x", "host": "10.9.9.9", "port": 50556}}
    assert sorted(run["add"]["assignment"]) == ["vcore1", "vcore2", "vcore3"]
    assert stored(kv, key) == before
    assert kv.get(key + "-new")[1] is None


def test_diff_shows_before_and_after(consul_agent, key, kv, tmp_path):
    kv.put(key, json.dumps(STORED))
    run = run_playbook(tmp_path, [
        task("add", consul_agent, key, add=[{"prefix": "vcore3", "id": "core-3", "host": "10.0.1.7"}]),
        task("delete", consul_agent, key, state="absent"),
    ], diff=True)
    assert_ok(run)
    diff = run["add"]["diff"]
    diff = diff[0] if isinstance(diff, list) else diff
    assert json.loads(diff["before"]) == STORED
    assert json.loads(diff["after"]) == dict(STORED, vcore3={"id": "core-3", "host": "10.0.1.7", "port": 50556})
    assert diff["before"].startswith("{\n  ") and diff["before_header"] == key
    diff = run["delete"]["diff"]
    diff = diff[0] if isinstance(diff, list) else diff
    assert json.loads(diff["before"])["vcore3"]["id"] == "core-3" and diff["after"] == ""


def test_bad_input_fails_naming_core_and_field(consul_agent, key, kv, tmp_path):
    kv.put(key, json.dumps(STORED))
    before = stored(kv, key)
    bad = [
        ("bad port", dict(cores=[{"prefix": "vcore9", "id": "core-9", "host": "10.0.1.9", "port": 70000}]),
         ['core "vcore9"', "'port'", "70000"]),
        ("bad host", dict(add=[{"prefix": "vcore9", "id": "core-9", "host": "not a host!"}]),
         ['core "vcore9"', "'host'", '"not a host!"']),
        ("duplicate id", dict(add={"vcore9": {"id": "core-1", "host": "10.0.1.9"}}),
         ['core "vcore9"', "'id'", "duplicates", '"core-1"']),
        ("remove all", dict(remove=["vcore1", "vcore2"]), ["no cores", "state=absent"]),
        ("both", dict(cores=CORES, remove=["vcore1"]), ["mutually exclusive"]),
    ]
    tasks = [dict(task(name, consul_agent, key, **args), ignore_errors=True) for name, args, _ in bad]
    run = run_playbook(tmp_path, tasks)
    for name, _, words in bad:
        result = run[name]
        assert result.get("failed"), (name, result)
        for word in words:
            assert word in result["msg"], (name, result["msg"])
    assert stored(kv, key) == before


def test_invalid_stored_value(consul_agent, key, kv, tmp_path):
    kv.put(key, '{"vcore1": {"id": "core-1", "host": "10.0.1.5", "port": "50556"}}')
    run = run_playbook(tmp_path, [
        dict(task("read", consul_agent, key, state="read"), ignore_errors=True),
        task("read anyway", consul_agent, key, state="read", ignore_invalid=True),
        dict(task("add", consul_agent, key, add=CORES[1:]), ignore_errors=True),
        dict({"name": "lookup", "ansible.builtin.debug": {"msg": lookup_expr(consul_agent, key)}},
             ignore_errors=True),
        task("replace", consul_agent, key, cores=CORES),
    ])
    assert run["read"]["failed"] and "not a valid assignment" in run["read"]["msg"]
    assert 'core "vcore1": field \'port\'' in run["read"]["msg"]
    assert run["read anyway"]["valid"] is False and "'port'" in run["read anyway"]["error"]
    assert run["add"]["failed"] and "cannot add or remove cores" in run["add"]["msg"]
    assert run["lookup"]["failed"] and "'port'" in run["lookup"]["msg"] and key in run["lookup"]["msg"]
    assert run["replace"]["changed"] and run["replace"]["replaced_invalid"] is True
    assert stored(kv, key)[0] == STORED


def test_lookup_options(consul_agent, key, kv, tmp_path):
    kv.put(key, json.dumps({"vcore1": {"id": "core-1", "host": "10.0.1.5"}}))
    missing = key + "-missing"
    run = run_playbook(tmp_path, [
        {"name": "two keys", "ansible.builtin.debug": {
            "msg": "{{ query('%s', '%s', '%s', port=%d, missing='empty', default_port=7) }}"
                   % (MODULE, key, missing, consul_agent.http_port)}},
        {"name": "key option", "ansible.builtin.debug": {
            "msg": "{{ lookup('%s', key='%s', port=%d) }}" % (MODULE, key, consul_agent.http_port)}},
        dict({"name": "missing", "ansible.builtin.debug": {"msg": lookup_expr(consul_agent, missing)}},
             ignore_errors=True),
    ])
    assert run["two keys"]["msg"] == [{"vcore1": {"id": "core-1", "host": "10.0.1.5", "port": 7}}, {}]
    assert run["key option"]["msg"] == {"vcore1": {"id": "core-1", "host": "10.0.1.5", "port": 50556}}
    assert run["missing"]["failed"] and "does not exist" in run["missing"]["msg"] and missing in run["missing"]["msg"]


def test_module_defaults_group(consul_agent, key, kv, tmp_path):
    run = run_playbook(tmp_path, [
        {"name": "set", MODULE: {"key": key, "cores": CORES}},
        {"name": "read", MODULE: {"key": key, "state": "read"}},
    ], module_defaults={"group/voltha.envoy.consul": {"host": "127.0.0.1", "port": consul_agent.http_port}},
       env={"CONSUL_HTTP_ADDR": "127.0.0.1:1"})  # without the group defaults the tasks would fail
    assert_ok(run, "set", "read")
    assert run["set"]["changed"] and run["read"]["assignment"] == STORED
    assert stored(kv, key)[0] == STORED


def test_consul_down_is_a_clear_failure(start_consul, tmp_path):
    agent = start_consul()
    port = agent.http_port
    agent.stop()
    run = run_playbook(tmp_path, [{"name": "read", MODULE: {"port": port, "timeout": 3, "state": "read"}}])
    assert run["read"]["failed"] and f"Consul at http://127.0.0.1:{port} failed" in run["read"]["msg"]


def test_concurrent_playbooks_lose_no_update(consul_agent, key, kv, tmp_path):
    """Parallel ansible-playbook runs each add their own core to the same key: every core must remain."""
    kv.put(key, json.dumps(STORED))
    writers = 6

    def add(n):
        return run_playbook(tmp_path / f"writer-{n}", [
            task("add", consul_agent, key, retries=20,
                 add=[{"prefix": f"w{n}", "id": f"writer-{n}", "host": f"10.1.0.{n + 1}"}]),
        ])

    with ThreadPoolExecutor(writers) as pool:
        runs = list(pool.map(add, range(writers)))
    for run in runs:
        assert_ok(run, "add")
        assert run["add"]["changed"]
    value = stored(kv, key)[0]
    assert sorted(value) == sorted(["vcore1", "vcore2"] + [f"w{n}" for n in range(writers)])
    # Whether any run lost a check-and-set here depends on timing, so the count is not asserted;
    # test_store_cas_conflict_on_real_consul forces conflicts on the real Consul and checks it.
    assert all(isinstance(run["add"]["conflicts"], int) for run in runs)


class InterferingKV:
    """The real Consul KV, with another client's write injected between our read and our write."""

    def __init__(self, kv, key, times):
        self.kv, self.key, self.left = kv, key, times
        self.injected = []

    def get(self, key, **kwargs):
        return self.kv.get(key, **kwargs)

    def _interfere(self):
        if self.left > 0:
            self.left -= 1
            value = {"intruder%d" % self.left: {"id": "intruder-%d" % self.left, "host": "10.2.0.%d" % self.left}}
            assert self.kv.put(self.key, json.dumps(value))
            self.injected.append(value)

    def put(self, key, value, cas=None):
        self._interfere()
        return self.kv.put(key, value, cas=cas)

    def delete(self, key, cas=None):
        self._interfere()
        return self.kv.delete(key, cas=cas)


def test_store_cas_conflict_on_real_consul(consul_agent, key, kv):
    kv.put(key, json.dumps(STORED))
    store = AssignmentStore(InterferingKV(kv, key, 2), key)
    outcome = store.change(add={"vcore3": {"id": "core-3", "host": "10.0.1.7"}})
    assert outcome.changed and outcome.conflicts == 2
    value, modify_index, _ = stored(kv, key)
    # recomputed on top of the last intruder's value, which Consul kept: nothing was lost
    assert sorted(value) == ["intruder0", "vcore3"] and outcome.index == modify_index

    outcome = AssignmentStore(InterferingKV(kv, key, 1), key).delete()
    assert outcome.changed and outcome.conflicts == 1 and kv.get(key)[1] is None

    store = AssignmentStore(InterferingKV(kv, key, 10), key)
    with pytest.raises(AssignmentConflictError) as info:
        store.set(STORED, retries=2)
    assert info.value.conflicts == 3 and key in str(info.value)
    assert "another writer keeps changing it" in str(info.value)
    assert stored(kv, key)[0] == store.kv.injected[-1]


def test_create_only_if_absent_on_real_consul(consul_agent, key, kv):
    """cas=0 on a missing key: a key created by someone else in between makes our create a conflict."""
    store = AssignmentStore(InterferingKV(kv, key, 1), key)
    outcome = store.set(STORED)
    assert outcome.changed and outcome.conflicts == 1 and stored(kv, key)[0] == STORED
