"""_envoy/validate.py: config shapes, and validation by Envoy (a fake envoy that logs how it was called)."""

import copy
import os

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._envoy.validate import (
    ConfigRejected,
    EnvoyValidator,
    config_shape,
)
from ansible_collections.voltha.envoy.tests.unit.plugins.module_utils._envoy.rendered import (
    first_endpoint,
    render,
    shape_of,
)


def test_shape_ignores_ips_of_the_same_kind_ports_ids_and_count():
    base = shape_of("10.0.0.1")
    assert shape_of("192.168.7.9") == base
    assert shape_of("10.0.0.1", ports=[1]) == base
    assert shape_of("10.0.0.1", ids=['"}\n{{ 7*7 }}']) == base
    assert shape_of("10.0.0.1", "10.0.0.2", "10.0.0.3", ports=[1, 2, 65535]) == base
    assert shape_of("::1") == shape_of("fd00::2", "fd00::3")
    assert shape_of("a.example") == shape_of("b.example", "c.example.", ports=[5, 6])


def test_shape_is_stable():
    config = render("10.0.0.1").config
    assert config_shape(config) == config_shape(copy.deepcopy(config))
    before = copy.deepcopy(config)
    config_shape(config)
    assert config == before  # the config is not changed


@pytest.mark.parametrize("hosts", [("::1",), ("a.example",), ("10.0.0.1", "::1"), ("10.0.0.1", "a.example")])
def test_shape_changes_with_the_host_kind(hosts):
    assert shape_of(*hosts) != shape_of("10.0.0.1")


def test_host_kind_alone_changes_the_shape():
    """Same cluster type, only the address kind differs (ipv4 vs dns)."""
    config = render("10.0.0.1").config
    other = copy.deepcopy(config)
    first_endpoint(other)["address"]["socket_address"]["address"] = "core.example"
    assert other["static_resources"]["clusters"][0]["type"] == "STATIC"
    assert config_shape(other) != config_shape(config)
    first_endpoint(other)["address"]["socket_address"]["address"] = "10.9.9.9"
    assert config_shape(other) == config_shape(config)


def test_cluster_type_changes_the_shape():
    config = render("10.0.0.1").config
    other = copy.deepcopy(config)
    other["static_resources"]["clusters"][0]["type"] = "STRICT_DNS"
    assert config_shape(other) != config_shape(config)


@pytest.mark.parametrize("variables", [
    {"connect_timeout": "1s"}, {"listen_port": "1"}, {"admin_address": "0.0.0.0"}, {"cluster_name": "x"},
    {"buffer_limit_bytes": "1"}, {"route_prefix": "/other."}, {"round_robin_methods": "/a.B/C"},
    {"access_log_path": "/tmp/log"},
])
def test_any_other_field_changes_the_shape(variables):
    assert shape_of("10.0.0.1", variables=variables) != shape_of("10.0.0.1")


@pytest.mark.parametrize("change", [
    lambda e: e["address"]["socket_address"].__setitem__("port_value", 0),
    lambda e: e["address"]["socket_address"].__setitem__("port_value", 70000),
    lambda e: e["address"]["socket_address"].__setitem__("port_value", "50556"),
    lambda e: e["address"]["socket_address"].__setitem__("port_value", True),
    lambda e: e["address"]["socket_address"].__setitem__("address", "not a host"),
    lambda e: e["address"]["socket_address"].__setitem__("address", 10),
    lambda e: e["address"]["socket_address"].__setitem__("protocol", "UDP"),
    lambda e: e["address"].__setitem__("socket_address", "10.0.0.1:1"),
    lambda e: e.__setitem__("health_check_config", {"port_value": 1}),
    lambda e: e.__setitem__("hostname", 7),
])
def test_endpoints_that_cannot_be_reduced_keep_their_shape(change):
    config = render("10.0.0.1").config
    other = copy.deepcopy(config)
    change(first_endpoint(other))
    assert config_shape(other) != config_shape(config)


def test_endpoint_fields_beside_the_address_count():
    config = render("10.0.0.1").config
    other = copy.deepcopy(config)
    lb = other["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    lb["load_balancing_weight"] = 3
    assert config_shape(other) != config_shape(config)


def test_shape_without_clusters():
    assert config_shape({"admin": {}}) == config_shape({"admin": {}})
    assert config_shape({"admin": {}}) != config_shape({"admin": {"x": 1}})
    assert config_shape({"static_resources": {"clusters": [{"name": "c"}]}})  # no load_assignment


# ------------------------------------------------------------------ split_dynamic


FAKE_ENVOY = """#!/bin/sh
# args: --mode validate -c PATH --log-level error --concurrency 1
echo "$@" >> "{log}"
if grep -q REJECT "$4"; then
  echo "[2024-01-01 00:00:00.000][1][info][main] starting"
  echo "[2024-01-01 00:00:00.001][1][critical][main] error initializing configuration '$4': cluster REJECT is bad" >&2
  exit 1
fi
if grep -q SILENT "$4"; then exit 1; fi
if grep -q PLAIN "$4"; then echo "first line"; echo "  last line: bad value  " >&2; exit 1; fi
echo "configuration '$4' OK"
exit 0
"""


@pytest.fixture
def fake_envoy(tmp_path):
    log = tmp_path / "runs.log"
    path = tmp_path / "envoy"
    path.write_text(FAKE_ENVOY.format(log=log))
    path.chmod(0o755)
    workdir = tmp_path / "work"
    workdir.mkdir()

    def runs():
        return log.read_text().splitlines() if log.exists() else []

    return str(path), str(workdir), runs


def test_same_shape_is_validated_once(fake_envoy):
    binary, workdir, runs = fake_envoy
    validator = EnvoyValidator(binary, workdir, use_shape_cache=True)
    first = render("10.0.0.1")
    assert validator.validate(first.text, first.config) == "envoy"
    assert len(runs()) == 1
    args = runs()[0].split()
    assert args[:2] == ["--mode", "validate"] and args[2] == "-c" and args[4:] == [
        "--log-level", "error", "--concurrency", "1"]
    assert os.path.dirname(args[3]) == workdir
    second = render("10.0.0.7", "10.0.0.8", ports=[1, 2], ids=["x", "y"])
    assert validator.validate(second.text, second.config) == "shape-cache"
    assert validator.validate(second.text) == "shape-cache"  # parses the text itself
    assert len(runs()) == 1 and validator.envoy_runs == 1
    third = render("core.example")
    assert validator.validate(third.text, third.config) == "envoy"
    assert len(runs()) == 2 and validator.envoy_runs == 2
    assert os.listdir(workdir) == []  # the file given to Envoy is removed


def test_file_given_to_envoy_is_named_by_format(fake_envoy):
    binary, workdir, runs = fake_envoy
    validator = EnvoyValidator(binary, workdir, use_shape_cache=False)
    rendered = render("10.0.0.1")
    validator.validate(rendered.text, rendered.config, rendered.format)
    validator.validate("a: 1\n")
    paths = [line.split()[3] for line in runs()]
    assert paths[0].endswith("." + rendered.format) and paths[1].endswith(".yaml")


def test_without_shape_cache_every_config_runs_envoy(fake_envoy):
    binary, workdir, runs = fake_envoy
    validator = EnvoyValidator(binary, workdir, use_shape_cache=False)
    rendered = render("10.0.0.1")
    assert validator.validate(rendered.text, rendered.config) == "envoy"
    assert validator.validate(rendered.text, rendered.config) == "envoy"
    assert len(runs()) == 2


def test_rejection_carries_envoys_reason_and_is_not_cached(fake_envoy):
    binary, workdir, runs = fake_envoy
    validator = EnvoyValidator(binary, workdir)
    bad = render("10.0.0.1", variables={"cluster_name": "REJECT"})
    for _dummy in range(2):
        with pytest.raises(ConfigRejected) as info:
            validator.validate(bad.text, bad.config)
        message = str(info.value)
        assert message.startswith("error initializing configuration '%s" % os.path.join(workdir, ".validate."))
        assert message.endswith("': cluster REJECT is bad")
    assert len(runs()) == 2  # a rejected shape is asked again
    assert os.listdir(workdir) == []
    same_shape = render("10.0.0.9", variables={"cluster_name": "REJECT"})
    with pytest.raises(ConfigRejected):
        validator.validate(same_shape.text, same_shape.config)
    assert len(runs()) == 3


def test_rejection_reason_falls_back_to_last_line(fake_envoy):
    binary, workdir, _runs = fake_envoy
    validator = EnvoyValidator(binary, workdir)
    with pytest.raises(ConfigRejected) as info:
        validator.validate("a: PLAIN\n")
    assert str(info.value) == "last line: bad value"


def test_rejection_without_output(fake_envoy):
    binary, workdir, _runs = fake_envoy
    with pytest.raises(ConfigRejected) as info:
        EnvoyValidator(binary, workdir).validate("a: SILENT\n")
    assert str(info.value) == "envoy --mode validate failed without output"


def test_long_rejection_reason_is_cut(tmp_path):
    script = tmp_path / "envoy"
    script.write_text("#!/bin/sh\nprintf 'x%.0s' $(seq 1 5000) >&2\nexit 1\n")
    script.chmod(0o755)
    with pytest.raises(ConfigRejected) as info:
        EnvoyValidator(str(script), str(tmp_path)).validate("a: 1\n")
    assert str(info.value) == "x" * 2000


def test_accepted_then_rejected_shapes_are_separate(fake_envoy):
    binary, workdir, runs = fake_envoy
    validator = EnvoyValidator(binary, workdir)
    good = render("10.0.0.1")
    validator.validate(good.text, good.config)
    bad = render("10.0.0.1", variables={"listener_name": "REJECT"})
    with pytest.raises(ConfigRejected):
        validator.validate(bad.text, bad.config)
    assert validator.validate(good.text, good.config) == "shape-cache"
    assert len(runs()) == 2
