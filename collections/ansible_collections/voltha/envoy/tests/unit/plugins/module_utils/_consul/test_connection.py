"""Unit tests for Consul connection settings (consul_connection.py); nothing talks to Consul."""

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._consul import connection as consul_connection
from ansible_collections.voltha.envoy.plugins.module_utils._consul.connection import (
    ConsulConfigError,
    ConsulSettings,
    settings_from_environment,
    split_address,
)

SECRET = "b8e1c3a0-secret-token-4f1d"


def test_defaults():
    s = ConsulSettings()
    assert (s.host, s.port, s.scheme, s.token, s.validate_certs, s.datacenter) == (
        "127.0.0.1", 8500, "http", None, True, None)
    assert s.address == "127.0.0.1:8500"


def test_port_text_is_converted():
    assert ConsulSettings(port="8501").port == 8501


@pytest.mark.parametrize("scheme", ["ftp", "HTTP", "", None, "https "])
def test_bad_scheme_names_value(scheme):
    with pytest.raises(ConsulConfigError) as info:
        ConsulSettings(scheme=scheme)
    assert str(info.value) == "consul scheme must be http or https, got %r" % (scheme,)


@pytest.mark.parametrize("port", [0, 65536, -5, "0", "70000"])
def test_bad_port_number_names_value(port):
    with pytest.raises(ConsulConfigError) as info:
        ConsulSettings(port=port)
    assert str(info.value) == "consul port must be from 1 to 65535, got %r" % (port,)


@pytest.mark.parametrize("port", ["abc", None, "85 00"])
def test_port_not_a_number_names_value(port):
    with pytest.raises(ConsulConfigError) as info:
        ConsulSettings(port=port)
    assert repr(port) in str(info.value)


@pytest.mark.parametrize("kwargs,missing", [({"client_cert": "c.pem"}, "client_cert"),
                                            ({"client_key": "k.pem"}, "client_key")])
def test_client_cert_and_key_go_together(kwargs, missing):
    with pytest.raises(ConsulConfigError) as info:
        ConsulSettings(**kwargs)
    assert str(info.value) == "consul client_cert and client_key go together; got only %s" % missing
    assert ConsulSettings(client_cert="c.pem", client_key="k.pem").client_cert == "c.pem"


def test_token_from_file_is_stripped(tmp_path):
    path = tmp_path / "token"
    path.write_text("  %s\n" % SECRET)
    assert ConsulSettings(token_file=str(path)).token == SECRET


def test_explicit_token_beats_file(tmp_path):
    path = tmp_path / "token"
    path.write_text("from-file")
    assert ConsulSettings(token="given", token_file=str(path)).token == "given"
    # and the file is not even read when a token is given
    assert ConsulSettings(token="given", token_file=str(tmp_path / "absent")).token == "given"


def test_empty_token_file_means_no_token(tmp_path):
    path = tmp_path / "token"
    path.write_text("\n")
    assert ConsulSettings(token_file=str(path)).token is None
    assert ConsulSettings(token="").token is None


def test_unreadable_token_file_names_it(tmp_path):
    path = tmp_path / "nope"
    with pytest.raises(ConsulConfigError) as info:
        ConsulSettings(token_file=str(path))
    assert str(info.value) == "cannot read the consul token file %s: No such file or directory" % path


def test_repr_hides_the_token(tmp_path):
    path = tmp_path / "token"
    path.write_text(SECRET)
    for s in (ConsulSettings(token=SECRET, datacenter="dc1"), ConsulSettings(token_file=str(path))):
        assert SECRET not in repr(s) and SECRET not in str(s) and SECRET not in "%r %s" % (s, s)
        assert "token=set" in repr(s)
    assert repr(ConsulSettings(token=SECRET, datacenter="dc1", scheme="https", host="c", port=1)) == (
        "ConsulSettings(https://c:1, dc=dc1, token=set)")
    assert repr(ConsulSettings()) == "ConsulSettings(http://127.0.0.1:8500, dc=None, token=none)"


@pytest.mark.parametrize("address,expected", [
    ("consul:8501", (None, "consul", 8501)),
    ("consul", (None, "consul", 8500)),
    ("10.0.0.5:80", (None, "10.0.0.5", 80)),
    ("[::1]:8501", (None, "::1", 8501)),
    ("[::1]", (None, "::1", 8500)),
    ("[::1]:", (None, "::1", 8500)),
    ("::1", (None, "::1", 8500)),
    ("fd00::5", (None, "fd00::5", 8500)),
    ("https://consul.example:8501", ("https", "consul.example", 8501)),
    ("http://consul.example/", ("http", "consul.example", 8500)),
    ("https://[fd00::5]:443/", ("https", "fd00::5", 443)),
    ("unix://x", ("unix", "x", 8500)),
])
def test_split_address(address, expected):
    assert split_address(address) == expected


def test_split_address_default_port():
    assert split_address("h", default_port=8080) == (None, "h", 8080)


@pytest.mark.parametrize("address,shown,port", [
    ("consul:abc", "consul:abc", "abc"),
    ("consul:", "consul:", ""),
    ("http://consul:85x", "consul:85x", "85x"),
    ("[::1]x", "[::1]x", "x"),
    ("http://consul:8500/v1", "consul:8500/v1", "8500/v1"),
])
def test_split_address_bad_port_names_address_and_port(address, shown, port):
    with pytest.raises(ConsulConfigError) as info:
        split_address(address)
    assert str(info.value) == "consul address %r has a bad port %r" % (shown, port)


def test_settings_from_environment_empty():
    assert settings_from_environment({}) == {}
    env = {"CONSUL_HTTP_ADDR": "", "CONSUL_HTTP_TOKEN": "", "CONSUL_CACERT": ""}
    assert settings_from_environment(env) == {}


def test_settings_from_environment_all():
    env = {"CONSUL_HTTP_ADDR": "https://consul.example:8501", "CONSUL_HTTP_TOKEN": SECRET,
           "CONSUL_HTTP_TOKEN_FILE": "/t", "CONSUL_HTTP_SSL_VERIFY": "false", "CONSUL_CACERT": "/ca",
           "CONSUL_CLIENT_CERT": "/c", "CONSUL_CLIENT_KEY": "/k", "UNRELATED": "x"}
    assert settings_from_environment(env) == {
        "host": "consul.example", "port": 8501, "scheme": "https", "token": SECRET, "token_file": "/t",
        "validate_certs": False, "ca_path": "/ca", "client_cert": "/c", "client_key": "/k"}


@pytest.mark.parametrize("value,scheme", [("1", "https"), ("true", "https"), (" Yes ", "https"), ("on", "https"),
                                          ("0", "http"), ("false", "http"), ("", "http"), ("nonsense", "http")])
def test_consul_http_ssl_decides_the_scheme(value, scheme):
    env = {"CONSUL_HTTP_ADDR": "https://c:1", "CONSUL_HTTP_SSL": value}
    assert settings_from_environment(env)["scheme"] == scheme


def test_plain_address_has_no_scheme():
    assert settings_from_environment({"CONSUL_HTTP_ADDR": "c:1"}) == {"host": "c", "port": 1}


def test_settings_from_os_environ(monkeypatch):
    for name in ("CONSUL_HTTP_TOKEN", "CONSUL_HTTP_TOKEN_FILE", "CONSUL_HTTP_SSL", "CONSUL_HTTP_SSL_VERIFY",
                 "CONSUL_CACERT", "CONSUL_CLIENT_CERT", "CONSUL_CLIENT_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "envhost:9")
    assert settings_from_environment() == {"host": "envhost", "port": 9}


def test_settings_from_environment_bad_address():
    with pytest.raises(ConsulConfigError, match="bad port 'x'"):
        settings_from_environment({"CONSUL_HTTP_ADDR": "h:x"})


class FakeConsulModule:
    def __init__(self):
        self.calls = []

    def Consul(self, **kwargs):  # noqa: N802 (py-consul's name)
        self.calls.append(kwargs)
        return "client"


@pytest.fixture
def fake_consul(monkeypatch):
    fake = FakeConsulModule()
    monkeypatch.setattr(consul_connection, "py_consul", fake)
    return fake


def test_client_arguments(fake_consul):
    s = ConsulSettings(host="h", port=1, scheme="https", token=SECRET, ca_path="/ca", client_cert="/c",
                       client_key="/k", datacenter="dc1", timeout=3)
    assert s.client() == "client"
    assert fake_consul.calls == [dict(host="h", port=1, scheme="https", token=SECRET, verify="/ca",
                                      cert=("/c", "/k"), dc="dc1", connections_timeout=3)]


@pytest.mark.parametrize("kwargs,verify", [({}, True), ({"validate_certs": False}, False),
                                           ({"validate_certs": False, "ca_path": "/ca"}, False)])
def test_client_verify(fake_consul, kwargs, verify):
    ConsulSettings(**kwargs).client()
    call = fake_consul.calls[0]
    assert call["verify"] is verify
    assert call["cert"] is None and "connections_timeout" not in call


def test_client_without_library(monkeypatch):
    monkeypatch.setattr(consul_connection, "py_consul", None)
    with pytest.raises(ConsulConfigError, match="py-consul"):
        ConsulSettings().client()


ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t0001000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth1\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\t0\t0\t0
"""


def test_gateway_host_is_the_default_gateway(tmp_path, monkeypatch):
    table = tmp_path / "route"
    table.write_text(ROUTES)
    monkeypatch.setattr(consul_connection, "ROUTE_TABLE", str(table))
    assert consul_connection.default_gateway(str(table)) == "172.18.0.1"
    assert split_address("@gateway:8500") == (None, "172.18.0.1", 8500)
    assert split_address("http://@gateway") == ("http", "172.18.0.1", 8500)


def test_no_default_route_is_named(tmp_path):
    table = tmp_path / "route"
    table.write_text(ROUTES.splitlines()[0] + "\n" + ROUTES.splitlines()[1] + "\n")
    with pytest.raises(ConsulConfigError, match="@gateway: this host has no IPv4 default route"):
        consul_connection.default_gateway(str(table))
    with pytest.raises(ConsulConfigError, match="cannot read the route table"):
        consul_connection.default_gateway(str(tmp_path / "absent"))
