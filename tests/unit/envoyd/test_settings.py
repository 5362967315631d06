"""Unit tests for envoyd's settings (envoyd_settings.py): precedence, conversions, error messages."""

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import DEFAULT_KEY
from envoyd.settings import (
    OPTIONS,
    SettingsError,
    load_settings,
    parse_duration,
    parse_wait,
)


def write(tmp_path, text, name="envoyd.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# ------------------------------------------------------------------ durations (the grammar: test_durations.py)

def test_parse_duration_names_the_option_in_a_settings_error():
    assert parse_duration("1m30s", "drain_time") == 90.0
    with pytest.raises(SettingsError) as info:
        parse_duration("5x", "drain_time")
    assert str(info.value) == "drain_time must be a duration such as 250ms, 30s, 1m30s or 30 (seconds), got '5x'"


@pytest.mark.parametrize("value", ["30", "30s", "0.5m", "30000ms", 30])
def test_consul_wait_in_any_form_is_the_same_wait(value):
    assert load_settings(["--consul-wait", str(value)], {}).consul_wait_s == 30.0


@pytest.mark.parametrize("text,expected", [
    ("0", (0.0, 0.0)), ("1s", (1.0, 4.0)), ("100ms:2s", (0.1, 2.0)), ("1s:1s", (1.0, 1.0)), ("250ms", (0.25, 1.0)),
])
def test_parse_wait(text, expected):
    assert parse_wait(text) == pytest.approx(expected)


def test_parse_wait_max_below_min():
    with pytest.raises(SettingsError) as info:
        parse_wait("2s:1s")
    assert str(info.value) == "wait MAX must not be less than MIN, got '2s:1s'"


@pytest.mark.parametrize("text,bad", [("x:1s", "x"), ("1s:y", "y"), (":1s", "")])
def test_parse_wait_bad_part_named(text, bad):
    with pytest.raises(SettingsError) as info:
        parse_wait(text)
    assert str(info.value) == "wait must be a duration such as 250ms, 30s, 1m30s or 30 (seconds), got %r" % bad


# ------------------------------------------------------------------ defaults and precedence

def test_defaults():
    s = load_settings([], {})
    for name, (default, _kind, _help) in OPTIONS.items():
        assert getattr(s, name) == default, name
    assert s.assignment_key == DEFAULT_KEY
    assert (s.wait_min, s.wait_max, s.min_interval_s, s.drain_time_s, s.parent_shutdown_time_s) == (
        0.0, 0.0, 0.0, 5.0, 10.0)
    assert s.variables == {}
    assert s.explicit == {}
    c = s.consul
    assert (c.host, c.port, c.scheme, c.token, c.validate_certs) == ("127.0.0.1", 8500, "http", None, True)


def test_default_lists_are_not_shared():
    first = load_settings([], {})
    first.var.append("x=1")
    assert load_settings([], {}).var == []
    assert OPTIONS["var"][0] == []


@pytest.mark.parametrize("name,flag_value,env_value,file_value,default,expected_type", [
    ("log_level", "debug", "error", "warning", "info", str),
    ("reload", "hot-restart", "dynamic", "hot-restart", "dynamic", str),
    ("base_id", "3", "2", 1, None, int),
    ("envoy_concurrency", "4", "3", 2, None, int),
])
def test_precedence_flag_env_file_default(tmp_path, name, flag_value, env_value, file_value, default,
                                          expected_type):
    flag = "--" + name.replace("_", "-")
    config = write(tmp_path, "%s: %s\n" % (name, file_value))
    env = {"ENVOYD_" + name.upper(): env_value}

    def value(argv, environ):
        result = getattr(load_settings(argv, environ), name)
        assert result is None or isinstance(result, expected_type)
        return result

    assert value(["--config-file", config, flag, flag_value], env) == expected_type(flag_value)
    assert value(["--config-file", config], env) == expected_type(env_value)
    assert value(["--config-file", config], {}) == expected_type(file_value)
    assert value([], {}) == default


def test_precedence_for_flags_that_take_no_value(tmp_path):
    config = write(tmp_path, "once: true\ndry_run: false\n")
    assert load_settings(["--config-file", config], {}).once is True
    assert load_settings(["--config-file", config], {"ENVOYD_ONCE": "no"}).once is False
    assert load_settings(["--once"], {"ENVOYD_ONCE": "0"}).once is True
    assert load_settings([], {"ENVOYD_DRY_RUN": " Yes "}).dry_run is True


def test_precedence_for_template_variables(tmp_path):
    config = write(tmp_path, "vars:\n  listen_port: 1\n  admin_port: 2\n")
    assert load_settings(["--config-file", config], {}).variables == {"listen_port": "1", "admin_port": "2"}
    env = {"ENVOYD_VAR": "listen_port=3,cluster_name=c"}
    assert load_settings(["--config-file", config], env).variables == {"listen_port": "3", "cluster_name": "c"}
    assert load_settings(["--config-file", config, "--var", "a=1", "--var", "b=x=y"], env).variables == {
        "a": "1", "b": "x=y"}


def test_file_var_list_form(tmp_path):
    config = write(tmp_path, "var: [a=1, b=2]\n")
    assert load_settings(["--config-file", config], {}).variables == {"a": "1", "b": "2"}


def test_config_file_from_environment(tmp_path):
    from_env = write(tmp_path, "log_level: debug\n", "env.yaml")
    from_flag = write(tmp_path, "log_level: error\n", "flag.yaml")
    assert load_settings([], {"ENVOYD_CONFIG_FILE": from_env}).log_level == "debug"
    assert load_settings(["--config-file", from_flag], {"ENVOYD_CONFIG_FILE": from_env}).log_level == "error"


def test_empty_config_file(tmp_path):
    assert load_settings(["--config-file", write(tmp_path, "")], {}).reload == "dynamic"


def test_explicit_records_where_a_value_was_given(tmp_path):
    config = write(tmp_path, "datacenter: dc1\n")
    s = load_settings(["--config-file", config, "--once"], {"ENVOYD_LOG_LEVEL": "debug"})
    assert set(s.explicit) == {"datacenter", "once", "log_level"}


def test_durations_are_derived():
    s = load_settings(["--wait", "100ms:2s", "--min-interval", "50ms", "--drain-time", "1m"],
                      {"ENVOYD_PARENT_SHUTDOWN_TIME": "90s"})
    assert (s.wait_min, s.wait_max, s.min_interval_s, s.drain_time_s, s.parent_shutdown_time_s) == pytest.approx(
        (0.1, 2.0, 0.05, 60.0, 90.0))


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize("argv,environ,message", [
    (["--reload", "restart"], {}, "reload must be one of dynamic, xds, hot-restart, got 'restart'"),
    (["--drain-strategy", "slow"], {}, "drain_strategy must be immediate or gradual, got 'slow'"),
    ([], {"ENVOYD_VALIDATION": "none"}, "validation must be envoy or shape-cache, got 'none'"),
    (["--base-id", "one"], {}, "base_id must be an integer, got 'one'"),
    ([], {"ENVOYD_ENVOY_CONCURRENCY": "2.5"}, "envoy_concurrency must be an integer, got '2.5'"),
    (["--drain-time", "5x"], {}, "drain_time must be a duration such as 250ms, 30s, 1m30s or 30 (seconds), got '5x'"),
    (["--parent-shutdown-time", "soon"], {},
     "parent_shutdown_time must be a duration such as 250ms, 30s, 1m30s or 30 (seconds), got 'soon'"),
    (["--min-interval", "-1"], {}, "min_interval must not be negative, got '-1'"),
    (["--consul-wait", "forever"], {},
     "consul_wait must be a duration such as 250ms, 30s, 1m30s or 30 (seconds), got 'forever'"),
    (["--wait", "2s:1s"], {}, "wait MAX must not be less than MIN, got '2s:1s'"),
])
def test_bad_values_name_option_and_value(argv, environ, message):
    with pytest.raises(SettingsError) as info:
        load_settings(argv, environ)
    assert str(info.value) == message


def test_bad_value_in_file_names_option_and_value(tmp_path):
    config = write(tmp_path, "base_id: [1]\n")
    with pytest.raises(SettingsError) as info:
        load_settings(["--config-file", config], {})
    assert str(info.value) == "base_id must be an integer, got [1]"


def test_unknown_keys_in_file_are_named(tmp_path):
    config = write(tmp_path, "consul-addr: x\nbogus: 1\nreload: dynamic\n")
    with pytest.raises(SettingsError) as info:
        load_settings(["--config-file", config], {})
    assert str(info.value) == "settings file %s has unknown keys: bogus, consul-addr" % config


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n"])
def test_file_must_be_a_mapping(tmp_path, text):
    config = write(tmp_path, text)
    with pytest.raises(SettingsError) as info:
        load_settings(["--config-file", config], {})
    assert str(info.value) == "settings file %s must hold a YAML mapping" % config


def test_file_not_yaml(tmp_path):
    config = write(tmp_path, "a: [\n")
    with pytest.raises(SettingsError, match="^cannot read the settings file %s: " % config):
        load_settings(["--config-file", config], {})


def test_file_missing(tmp_path):
    missing = str(tmp_path / "absent.yaml")
    with pytest.raises(SettingsError) as info:
        load_settings([], {"ENVOYD_CONFIG_FILE": missing})
    assert str(info.value).startswith("cannot read the settings file %s: " % missing)
    assert "No such file or directory" in str(info.value)


@pytest.mark.parametrize("argv", [["--var", "novalue"], ["--var", "=x"]])
def test_bad_var_is_a_settings_error(argv):
    with pytest.raises(SettingsError):
        load_settings(argv, {})


@pytest.mark.parametrize("argv,environ", [
    (["--consul-addr", "consul:abc"], {}),
    (["--consul-addr", "consul:99999"], {}),
    (["--consul-client-cert", "/c.pem"], {}),
    (["--consul-token-file", "/nonexistent/token"], {}),
    ([], {"CONSUL_HTTP_ADDR": "consul:x"}),
])
def test_bad_consul_settings_are_settings_errors(argv, environ):
    with pytest.raises(SettingsError):
        load_settings(argv, environ)


# ------------------------------------------------------------------ Consul settings

def test_consul_http_addr_used_when_no_envoyd_address():
    s = load_settings([], {"CONSUL_HTTP_ADDR": "https://consul.example:8501"})
    assert (s.consul.host, s.consul.port, s.consul.scheme) == ("consul.example", 8501, "https")


def test_envoyd_address_beats_consul_http_addr():
    env = {"CONSUL_HTTP_ADDR": "https://consul.example:8501", "ENVOYD_CONSUL_ADDR": "other:1"}
    s = load_settings([], env)
    assert (s.consul.host, s.consul.port) == ("other", 1)
    assert s.consul.scheme == "https"  # the scheme from CONSUL_HTTP_ADDR is kept
    s = load_settings(["--consul-addr", "flag:2"], env)
    assert (s.consul.host, s.consul.port) == ("flag", 2)


def test_address_in_file_beats_consul_http_addr(tmp_path):
    config = write(tmp_path, "consul_addr: file:3\n")
    s = load_settings(["--config-file", config], {"CONSUL_HTTP_ADDR": "env:4"})
    assert (s.consul.host, s.consul.port) == ("file", 3)


def test_scheme_precedence():
    assert load_settings(["--consul-addr", "https://h:1"], {}).consul.scheme == "https"
    assert load_settings(["--consul-addr", "https://h:1", "--consul-scheme", "http"], {}).consul.scheme == "http"
    assert load_settings(["--consul-scheme", "https"], {}).consul.scheme == "https"
    assert load_settings([], {"CONSUL_HTTP_SSL": "true"}).consul.scheme == "https"
    assert load_settings([], {"CONSUL_HTTP_SSL": "true", "ENVOYD_CONSUL_SCHEME": "http"}).consul.scheme == "http"


def test_bad_scheme_is_named():
    with pytest.raises(ValueError, match="got 'gopher'"):
        load_settings(["--consul-scheme", "gopher"], {})


def test_token_file_beats_consul_http_token(tmp_path):
    token = tmp_path / "token"
    token.write_text("from-file\n")
    s = load_settings(["--consul-token-file", str(token)], {"CONSUL_HTTP_TOKEN": "from-env"})
    assert s.consul.token == "from-file"
    assert "from-file" not in repr(s.consul)
    assert load_settings([], {"CONSUL_HTTP_TOKEN": "from-env"}).consul.token == "from-env"
    assert load_settings([], {"CONSUL_HTTP_TOKEN_FILE": str(token)}).consul.token == "from-file"


def test_tls_settings():
    s = load_settings(["--consul-insecure", "--consul-ca-file", "/ca", "--consul-client-cert", "/c",
                       "--consul-client-key", "/k", "--datacenter", "dc2"], {})
    c = s.consul
    assert (c.validate_certs, c.ca_path, c.client_cert, c.client_key, c.datacenter) == (False, "/ca", "/c", "/k",
                                                                                        "dc2")
    env = {"CONSUL_HTTP_SSL_VERIFY": "false", "CONSUL_CACERT": "/env-ca"}
    c = load_settings(["--consul-ca-file", "/ca"], env).consul
    assert (c.validate_certs, c.ca_path) == (False, "/ca")
