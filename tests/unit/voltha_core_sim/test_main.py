"""__main__.py: the command line and the membership settings it makes."""

from __future__ import annotations

import pytest

from voltha_core_sim.__main__ import build_parser, membership_config


def test_command_line_to_membership_config():
    args = build_parser().parse_args(["--core-id", "core-1", "--port", "50557", "--consul-addr", "10.0.0.2:8501",
                                      "--check-interval", "2000ms", "--consul-wait", "30"])
    config, settings = membership_config(args, 50557)
    assert (config.core_id, config.host, config.port, config.prefix) == ("core-1", "127.0.0.1", 50557, "core-1")
    assert (config.service_name, config.lock_key, config.check_interval) == ("vcore", "service/voltha/leader", "2s")
    assert config.assignment_key == "service/voltha/data/core/assignment"
    assert config.wait == "30s"  # plain seconds, as Consul takes them
    assert (settings.host, settings.port) == ("10.0.0.2", 8501)


@pytest.mark.parametrize("argv, message", [
    (["--host", "0.0.0.0"], "--advertise-host"),
    (["--check-interval", "soon"], "--check-interval must be a duration such as 250ms, 30s, 1m30s or 30 "
                                   r"\(seconds\), got 'soon'"),
    (["--consul-addr", "host:port"], "bad port"),
    (["--check-interval", "0"], "--check-interval must be more than 0"),
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
