"""Unit tests for the voltha.envoy.envoy_config module: arguments, error messages, files and check mode.

The module runs in-process (AnsibleModule with patched arguments); Envoy is a small fake script here,
the real one is in tests/integration/test_envoy_config_module.py.
"""

import json
import os
import socket
import stat

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import parse_assignment
from ansible_collections.voltha.envoy.plugins.module_utils._envoy import files as envoy_files
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.files import (
    dynamic_files,
    layout_files,
    sha256_text,
)
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.render import Renderer, build
from ansible_collections.voltha.envoy.plugins.modules import envoy_config
from ansible_collections.voltha.envoy.tests.unit.plugins.modules.utils import ModuleHarness, catch_module_exits

CORES = {"vcore1": {"id": "core-1", "host": "10.0.1.5", "port": 50556},
         "vcore2": {"id": "core-2", "host": "10.0.1.6"}}


@pytest.fixture(autouse=True)
def no_exit(monkeypatch):
    catch_module_exits(monkeypatch)


MODULE = ModuleHarness(envoy_config.main)
run, ok, failed = MODULE.run, MODULE.ok, MODULE.failed


@pytest.fixture
def fake_envoy(tmp_path):
    """An 'Envoy' that accepts every config, or rejects them all with Envoy's kind of message."""
    def make(accept=True):
        path = tmp_path / ("envoy-ok" if accept else "envoy-no")
        if accept:
            path.write_text("#!/bin/sh\nexit 0\n")
        else:
            path.write_text("#!/bin/sh\necho '[2024-01-01 00:00:00.000][1][critical][main] "
                            "error initializing configuration: Proto constraint validation failed' >&2\nexit 1\n")
        path.chmod(0o755)
        return str(path)
    return make


def args_for(dest, **extra):
    return dict(dict(dest=str(dest), assignment=CORES, validate=False), **extra)


# ------------------------------------------------------------ arguments


def test_assignment_and_key_are_mutually_exclusive(tmp_path):
    msg = failed(args_for(tmp_path / "envoy.json", key="some/key"))
    assert "mutually exclusive" in msg and "assignment" in msg and "key" in msg


def test_dest_is_required():
    assert "missing required arguments: dest" in failed({"assignment": CORES})


def test_layout_choices(tmp_path):
    assert "layout" in failed(args_for(tmp_path / "x", layout="hot-restart"))


def test_static_dest_must_not_be_a_directory(tmp_path):
    assert "is a directory" in failed(args_for(tmp_path))


def test_dynamic_dest_must_be_a_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    assert "is not a directory" in failed(args_for(tmp_path / "file", layout="dynamic"))


def test_argument_spec_shares_the_consul_options():
    from ansible_collections.voltha.envoy.plugins.module_utils._consul.connection import CONSUL_ARGUMENT_SPEC

    spec = envoy_config.argument_spec()
    for name, option in CONSUL_ARGUMENT_SPEC.items():
        assert spec[name] == option
    assert spec["key"]["default"] == "service/voltha/data/core/assignment"


# ------------------------------------------------------------ bad assignments


@pytest.mark.parametrize("assignment, expected", [
    ({"vcore1": {"id": "core-1"}}, "core \"vcore1\": field 'host' is missing"),
    ({"vcore1": {"id": "core-1", "host": "10.0.1.5", "port": 70000}},
     "core \"vcore1\": field 'port' must be an integer from 1 to 65535, got 70000"),
    ({"vcore1": {"id": "core-1", "host": "bad host"}},
     "core \"vcore1\": field 'host' must be an IP address or a DNS name, got \"bad host\""),
    ({"a": {"id": "core-1", "host": "10.0.0.1"}, "b": {"id": "core-1", "host": "10.0.0.2"}},
     "core \"b\": field 'id' duplicates core \"a\""),
    ({}, "assignment has no cores"),
    ([{"id": "core-1", "host": "10.0.0.1"}], "field 'prefix' is missing"),
    ([{"prefix": "p", "id": "c1", "host": "10.0.0.1"}, {"prefix": "p", "id": "c2", "host": "10.0.0.2"}],
     "core \"p\" is given more than once"),
    ("not json", "assignment is not valid JSON"),
    (42, "must be a list of cores or a dict keyed by prefix"),
])
def test_bad_assignment_is_named(tmp_path, assignment, expected):
    dest = tmp_path / "envoy.json"
    msg = failed(args_for(dest, assignment=assignment))
    assert msg.startswith("bad assignment in the assignment option: ")
    assert expected in msg
    assert not dest.exists()


def test_bad_variable_is_named(tmp_path):
    msg = failed(args_for(tmp_path / "envoy.json", variables={"listen_port": "eighty"}))
    assert msg == 'template variable listen_port must be a port from 0 to 65535, got "eighty"'


def test_missing_template_is_named(tmp_path):
    msg = failed(args_for(tmp_path / "envoy.json", template=str(tmp_path / "nope.j2")))
    assert msg.startswith("cannot read the template %s" % (tmp_path / "nope.j2"))


def test_template_syntax_error_is_named(tmp_path):
    template = tmp_path / "bad.j2"
    template.write_text('{"admin": {{ admin_port }\n')
    msg = failed(args_for(tmp_path / "envoy.json", template=str(template)))
    assert msg.startswith("template %s line 1:" % template)


def test_undefined_template_variable_is_named(tmp_path):
    template = tmp_path / "t.j2"
    template.write_text('{"tenant": {{ tenant }}}\n')
    msg = failed(args_for(tmp_path / "envoy.json", template=str(template)))
    assert "'tenant' is undefined" in msg


def test_missing_envoy_is_named(tmp_path):
    dest = tmp_path / "envoy.json"
    msg = failed(args_for(dest, validate=True, envoy_bin=str(tmp_path / "no-envoy")))
    assert "is not an executable file" in msg
    assert not dest.exists()


def test_envoy_rejection_keeps_the_old_file(tmp_path, fake_envoy):
    dest = tmp_path / "envoy.json"
    dest.write_text("old\n")
    done = run(args_for(dest, validate=True, envoy_bin=fake_envoy(accept=False)))
    assert done.failed
    assert done.result["msg"] == ("Envoy rejected the config, nothing was written: "
                                  "error initializing configuration: Proto constraint validation failed")
    assert dest.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["envoy-no", "envoy.json"]


def test_unreachable_consul_is_named(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    msg = failed({"dest": str(tmp_path / "envoy.json"), "validate": False, "port": port, "timeout": 2})
    assert msg.startswith("cannot read service/voltha/data/core/assignment from consul 127.0.0.1:%d: " % port)


def test_bad_consul_settings_are_named(tmp_path):
    msg = failed({"dest": str(tmp_path / "envoy.json"), "validate": False, "client_cert": "/x.pem"})
    assert msg == "consul client_cert and client_key go together; got only client_cert"


# ------------------------------------------------------------ writing


def test_writes_reports_and_is_idempotent(tmp_path, fake_envoy):
    dest = tmp_path / "envoy.json"
    result = ok(args_for(dest, validate=True, envoy_bin=fake_envoy()))
    text = dest.read_text()
    assert result["changed"] is True
    assert result["validated"] is True
    assert result["checksum"] == sha256_text(text)
    assert result["cores"] == 2
    assert result["assignment"] == {"vcore1": {"id": "core-1", "host": "10.0.1.5", "port": 50556},
                                    "vcore2": {"id": "core-2", "host": "10.0.1.6", "port": 50556}}
    assert result["format"] == "json"
    assert result["files"] == [str(dest)]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644
    # The same text as envoyd renders for the same assignment.
    assert text == Renderer().render(parse_assignment(CORES)).text

    again = ok(args_for(dest, validate=True, envoy_bin=fake_envoy()))
    assert again["changed"] is False
    assert again["checksum"] == result["checksum"]
    assert sorted(os.listdir(tmp_path)) == ["envoy-ok", "envoy.json"]  # no temporary files left


def test_list_and_json_text_give_the_same_file(tmp_path):
    as_list = [dict(prefix=prefix, **core) for prefix, core in CORES.items()]
    first = ok(args_for(tmp_path / "a.json", assignment=as_list))
    second = ok(args_for(tmp_path / "b.json", assignment=json.dumps(CORES)))
    assert first["checksum"] == second["checksum"]
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()


def test_core_port_variable_is_the_default_port(tmp_path):
    result = ok(args_for(tmp_path / "envoy.json", variables={"core_port": 6000}))
    assert result["assignment"]["vcore2"]["port"] == 6000
    assert result["assignment"]["vcore1"]["port"] == 50556


def test_check_mode_writes_nothing(tmp_path):
    dest = tmp_path / "sub" / "envoy.json"
    result = ok(args_for(dest), check=True)
    assert result["changed"] is True
    assert result["files"] == [str(dest)]
    assert not (tmp_path / "sub").exists()


def test_diff_shows_before_and_after(tmp_path):
    dest = tmp_path / "envoy.json"
    dest.write_text("old\n")
    result = ok(args_for(dest), check=True, diff=True)
    assert result["diff"]["before"] == "old\n"
    assert result["diff"]["after"] == Renderer().render(parse_assignment(CORES)).text
    assert result["diff"]["after_header"] == str(dest)
    assert dest.read_text() == "old\n"


def test_mode_change_alone_is_a_change(tmp_path):
    dest = tmp_path / "envoy.json"
    ok(args_for(dest))
    result = ok(args_for(dest, mode="0600"), check=True)
    assert result["changed"] is True
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644
    result = ok(args_for(dest, mode="0600"))
    assert result["changed"] is True
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert ok(args_for(dest, mode="u=rw,g=,o="))["changed"] is False
    # Without mode, the file goes back to 0644 as envoyd writes it.
    assert ok(args_for(dest))["changed"] is True
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644


def test_dynamic_layout_writes_the_files_envoyd_writes(tmp_path):
    result = ok(args_for(tmp_path / "conf", layout="dynamic", mode="0640"))
    conf = str(tmp_path / "conf")
    expected = [conf + "/envoy.json", conf + "/xds/eds/voltha-grpc@0.json", conf + "/xds/cds.json",
                conf + "/xds/lds.json", conf + "/bootstrap.json"]
    assert result["files"] == expected
    rendered = build(Renderer(), CORES).rendered
    for path, text in layout_files(conf, rendered.text, rendered.config, rendered.format, "dynamic"):
        assert open(path).read() == text
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert result["checksum"] == sha256_text(rendered.text)
    assert ok(args_for(tmp_path / "conf", layout="dynamic", mode="0640"))["changed"] is False


# ------------------------------------------------------------ config_writer


def test_layout_files_static_and_dynamic(tmp_path):
    text, config, fmt = build(Renderer(), CORES).rendered
    static = layout_files(str(tmp_path), text, config, fmt)
    assert static == [(str(tmp_path / "envoy.json"), text)]
    dynamic = layout_files(str(tmp_path), text, config, fmt, "dynamic")
    assert dynamic[0] == static[0]
    assert dynamic[1:] == dynamic_files(str(tmp_path), text, config)
    eds, cds, lds, bootstrap = (json.loads(text) for path, text in dynamic[1:])
    assert bootstrap["dynamic_resources"]["cds_config"]["path_config_source"]["path"] == str(tmp_path / "xds/cds.json")
    assert len({eds["version_info"], cds["version_info"], lds["version_info"]}) == 3  # each a digest of its own
    other_cores = dict(CORES, vcore3={"id": "core-3", "host": "10.0.1.7"})
    other_text, other_config, other_fmt = build(Renderer(), other_cores).rendered
    other = layout_files(str(tmp_path), other_text, other_config, other_fmt, "dynamic")
    assert other[1][1] != dynamic[1][1]  # the cores changed: their endpoints file changes
    assert other[2:] == dynamic[2:]  # clusters and listeners did not: Envoy rebuilds no cluster
    with pytest.raises(ValueError, match="layout must be one of static, dynamic"):
        layout_files(str(tmp_path), text, config, fmt, "other")


def test_build_names_a_missing_key():
    with pytest.raises(ValueError, match="assignment key some/key does not exist"):
        build(Renderer(), None, "some/key")


def test_write_files_creates_directories_and_reports_changes(tmp_path):
    files = [(str(tmp_path / "a" / "b.json"), "1\n"), (str(tmp_path / "c.json"), "2\n")]
    assert envoy_files.write_files(files) == [path for path, _dummy in files]
    assert envoy_files.write_files(files) == []
    assert (tmp_path / "a" / "b.json").read_text() == "1\n"
