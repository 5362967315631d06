"""Unit tests for the voltha.envoy.core_assignment module: arguments, error messages, results, diff.

The module runs in-process (AnsibleModule with patched arguments) on a fake Consul KV; the real
Consul is in tests/integration/test_core_assignment.py.
"""

import json

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import DEFAULT_KEY
from ansible_collections.voltha.envoy.plugins.modules import core_assignment
from ansible_collections.voltha.envoy.tests.unit.plugins.module_utils._assignment.fake_kv import FakeKV
from ansible_collections.voltha.envoy.tests.unit.plugins.modules.utils import ModuleHarness, catch_module_exits

CORES = [{"prefix": "vcore2", "id": "core-2", "host": "10.0.1.6", "port": 50557},
         {"prefix": "vcore1", "id": "core-1", "host": "10.0.1.5"}]
STORED = {"vcore1": {"id": "core-1", "host": "10.0.1.5", "port": 50556},
          "vcore2": {"id": "core-2", "host": "10.0.1.6", "port": 50557}}


@pytest.fixture(autouse=True)
def no_exit(monkeypatch):
    catch_module_exits(monkeypatch)


@pytest.fixture
def kv(monkeypatch):
    fake = FakeKV()
    seen = []

    def consul_kv(params):
        seen.append(params)
        return fake

    monkeypatch.setattr(core_assignment, "consul_kv", consul_kv)
    fake.connections = seen
    return fake


MODULE = ModuleHarness(core_assignment.main)
run, ok, failed = MODULE.run, MODULE.ok, MODULE.failed


def stored(kv, key=DEFAULT_KEY):
    return json.loads(kv.data[key][0])


# arguments


@pytest.mark.parametrize("args, words", [
    ({}, ["state=present needs cores", "add"]),
    ({"cores": CORES, "add": CORES}, ["mutually exclusive", "cores", "add"]),
    ({"cores": CORES, "remove": ["vcore1"]}, ["mutually exclusive", "cores", "remove"]),
    ({"state": "absent", "cores": CORES}, ["cores only go(es) with state=present", "state=absent"]),
    ({"state": "read", "add": CORES, "remove": ["a"]}, ["add, remove only go(es) with state=present"]),
    ({"state": "nope"}, ["state", "present, absent, read"]),
    ({"cores": CORES, "default_port": 0}, ["default_port must be from 1 to 65535, got 0"]),
    ({"cores": CORES, "retries": -1}, ["retries must be 0 or more"]),
    ({"cores": CORES, "key": "/service/x"}, ["must not start with '/'"]),
    ({"cores": CORES, "key": ""}, ["non-empty Consul KV path"]),
    ({"cores": "vcore1"}, ["cores must be a list of cores or a dict keyed by prefix"]),
    ({"cores": [{"id": "a", "host": "h"}]}, ["cores[0]", "'prefix' is missing"]),
    ({"add": [{"prefix": "v", "id": "a", "host": "h", "hots": "x"}]}, ['core "v"', "'hots'"]),
    ({"remove": "vcore1,"}, ["non-empty string"]),
    ({"add": {"vcore1": {"id": "a", "host": "h"}}, "remove": ["vcore1"]}, ["both added and removed"]),
])
def test_argument_errors(kv, args, words):
    msg = failed(args)
    for word in words:
        assert word in msg
    assert kv.puts == [] and kv.deletes == []


@pytest.mark.parametrize("core, field, value", [
    ({"id": "core-1", "host": "10.0.1.5", "port": 70000}, "port", "70000"),
    ({"id": "core-1", "host": "bad host"}, "host", '"bad host"'),
    ({"id": "", "host": "10.0.1.5"}, "id", '""'),
    ({"id": "core-1", "host": "10.0.1.5", "port": "fifty"}, "port", '"fifty"'),
    ({"id": "core-1", "host": "10.0.1.5", "port": True}, "port", "true"),
])
@pytest.mark.parametrize("option", ["cores", "add"])
def test_bad_core_names_prefix_field_and_value(kv, core, field, value, option):
    done = run({option: [dict(core, prefix="vcore9")]})
    assert done.failed
    msg = done.result["msg"]
    assert 'core "vcore9"' in msg and "field %r" % field in msg and value in msg
    assert done.result["prefix"] == "vcore9" and done.result["field"] == field
    assert kv.connections == []  # refused before Consul was contacted


def test_missing_py_consul(monkeypatch, kv):
    monkeypatch.setattr(core_assignment, "PY_CONSUL_IMPORT_ERROR", "Traceback: No module named 'consul'")
    done = run({"state": "read"})
    assert done.failed and "py-consul" in done.result["msg"] and "No module named" in done.result["exception"]


def test_consul_config_error_is_reported(kv, monkeypatch):
    monkeypatch.setattr(core_assignment, "consul_kv", lambda params: core_assignment.settings_from_params(
        params).client().kv)
    msg = failed({"state": "read", "client_cert": "/tmp/cert.pem"})
    assert "client_cert and client_key go together" in msg


def test_consul_unreachable_is_reported():
    """A real py-consul client on a port nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = run({"state": "read", "port": port, "timeout": 2})
    assert done.failed and "Consul at http://127.0.0.1:%d failed" % port in done.result["msg"]


def test_connection_options_reach_the_client(kv):
    ok({"state": "read", "host": "consul.example", "port": 8501, "token": "secret"})
    params = kv.connections[0]
    assert (params["host"], params["port"], params["token"]) == ("consul.example", 8501, "secret")


# results


def test_set_then_unchanged(kv):
    result = ok({"cores": CORES})
    assert result["changed"] and stored(kv) == STORED
    assert result["assignment"] == STORED and result["exists"] and result["key"] == DEFAULT_KEY
    assert [c["prefix"] for c in result["cores"]] == ["vcore1", "vcore2"]
    assert result["cores"][0] == {"prefix": "vcore1", "id": "core-1", "host": "10.0.1.5", "port": 50556}
    assert result["index"] == kv.data[DEFAULT_KEY][1] and result["conflicts"] == 0
    assert result["replaced_invalid"] is False
    again = ok({"cores": dict(STORED)})
    assert not again["changed"] and again["index"] == result["index"]


def test_default_port_and_string_port(kv):
    result = ok({"cores": {"a": {"id": "x", "host": "h"}, "b": {"id": "y", "host": "h", "port": "9"}},
                 "default_port": 7})
    assert result["assignment"]["a"]["port"] == 7 and result["assignment"]["b"]["port"] == 9


def test_add_remove(kv):
    ok({"cores": CORES})
    result = ok({"add": [{"prefix": "vcore3", "id": "core-3", "host": "10.0.1.7"}], "remove": ["vcore1"]})
    assert result["changed"] and sorted(result["assignment"]) == ["vcore2", "vcore3"]
    assert "replaced_invalid" not in result
    assert not ok({"remove": ["vcore1"]})["changed"]


def test_remove_last_core_fails(kv):
    ok({"cores": CORES})
    msg = failed({"remove": ["vcore1", "vcore2"]})
    assert "no cores" in msg and "state=absent" in msg and DEFAULT_KEY in msg


def test_check_mode_and_diff(kv):
    result = ok({"cores": CORES}, check=True, diff=True)
    assert result["changed"] and kv.puts == [] and DEFAULT_KEY not in kv.data
    assert result["diff"]["before"] == "" and json.loads(result["diff"]["after"]) == STORED
    assert result["diff"]["after"].startswith("{\n")
    assert result["assignment"] == STORED and result["exists"] is True


def test_invalid_stored_value(kv):
    kv.raw_put(DEFAULT_KEY, '{"vcore1": {"id": "core-1", "host": "10.0.1.5", "port": 0}}')
    msg = failed({"state": "read"})
    assert "not a valid assignment" in msg and "'port'" in msg and DEFAULT_KEY in msg
    result = ok({"state": "read", "ignore_invalid": True})
    assert result["valid"] is False and "'port'" in result["error"] and result["assignment"] == {}
    assert "cannot add or remove cores" in failed({"add": CORES[:1]})
    result = ok({"cores": CORES}, diff=True)
    assert result["replaced_invalid"] is True and '"port": 0' in result["diff"]["before"]
    assert stored(kv) == STORED


def test_absent(kv):
    result = ok({"state": "absent"})
    assert not result["changed"] and not result["exists"]
    ok({"cores": CORES})
    result = ok({"state": "absent"}, check=True)
    assert result["changed"] and DEFAULT_KEY in kv.data
    result = ok({"state": "absent"}, diff=True)
    assert result["changed"] and DEFAULT_KEY not in kv.data and result["diff"]["after"] == ""
    assert result["assignment"] == {} and result["cores"] == [] and not result["exists"]


def test_read_missing(kv):
    result = ok({"state": "read", "key": "other/key"})
    assert result == dict(result, changed=False, exists=False, assignment={}, cores=[], key="other/key")


def test_conflict_exhausted(kv):
    def other_writer(fake):
        fake.raw_put(DEFAULT_KEY, json.dumps({"x": {"id": "x", "host": "h"}}))

    kv.before_write = other_writer
    done = run({"cores": CORES, "retries": 1})
    assert done.failed and DEFAULT_KEY in done.result["msg"] and "another writer" in done.result["msg"]
    assert done.result["conflicts"] == 2


def test_conflict_count_returned(kv):
    left = [2]

    def other_writer(fake):
        if left[0]:
            left[0] -= 1
            fake.raw_put(DEFAULT_KEY, json.dumps({"x": {"id": "x", "host": "h"}}))

    kv.before_write = other_writer
    result = ok({"add": CORES})
    assert result["conflicts"] == 2 and sorted(result["assignment"]) == ["vcore1", "vcore2", "x"]
