# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""How to reach Consul: one set of options for the daemon, the modules and the lookup.

Defaults follow the Consul CLI's environment variables (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN,
CONSUL_HTTP_TOKEN_FILE, CONSUL_HTTP_SSL, CONSUL_HTTP_SSL_VERIFY, CONSUL_CACERT, CONSUL_CLIENT_CERT,
CONSUL_CLIENT_KEY), so a shell that talks to Consul talks to it the same way here.

The host ``@gateway`` is this network namespace's IPv4 default gateway: in a container, the node it
runs on, so a task reaches its own node's Consul agent through the port that agent publishes there.
Registrations, checks and sessions live on one agent: a process that spreads its requests over
several servers finds its check missing on the next one, and one whose agent sits on another node
falls with that node.

Used by the core_assignment module and lookup, the envoy_config module, envoyd's settings and the
core simulator.
"""

import os
import socket
import struct
import traceback

from ansible_collections.voltha.envoy.plugins.module_utils._common.errors import VolthaEnvoyError
from ansible_collections.voltha.envoy.plugins.module_utils._consul.blocking import CONSISTENCY_MODES

try:
    import consul as py_consul  # py-consul
except ImportError:
    py_consul = None
    PY_CONSUL_IMPORT_ERROR = traceback.format_exc()
else:
    PY_CONSUL_IMPORT_ERROR = None

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8500
GATEWAY_HOST = "@gateway"
ROUTE_TABLE = "/proc/net/route"


class ConsulConfigError(VolthaEnvoyError, ValueError):
    pass


class ConsulSettings:
    """Connection settings; the token is kept out of repr() and logs."""

    def __init__(self, host=DEFAULT_HOST, port=DEFAULT_PORT, scheme="http", token=None, token_file=None,
                 validate_certs=True, ca_path=None, client_cert=None, client_key=None, datacenter=None,
                 timeout=None, consistency="default"):
        if scheme not in ("http", "https"):
            raise ConsulConfigError("consul scheme must be http or https, got %r" % (scheme,))
        if (consistency or "default") not in CONSISTENCY_MODES:
            raise ConsulConfigError("consul consistency must be one of %s, got %r"
                                    % (", ".join(CONSISTENCY_MODES), consistency))
        try:
            number = -1 if isinstance(port, bool) else int(port)
        except (TypeError, ValueError):
            number = -1
        if not 1 <= number <= 65535:
            raise ConsulConfigError("consul port must be from 1 to 65535, got %r" % (port,))
        port = number
        if bool(client_cert) != bool(client_key):
            raise ConsulConfigError("consul client_cert and client_key go together; got only %s"
                                    % ("client_cert" if client_cert else "client_key"))
        if token_file and not token:
            try:
                with open(token_file) as handle:
                    token = handle.read().strip()
            except OSError as err:
                raise ConsulConfigError(
                    "cannot read the consul token file %s: %s" % (token_file, err.strerror)) from err
        self.host, self.port, self.scheme = host, port, scheme
        self.token = token or None
        self.validate_certs, self.ca_path = validate_certs, ca_path
        self.client_cert, self.client_key = client_cert, client_key
        self.datacenter = datacenter or None
        self.timeout = timeout
        self.consistency = consistency or "default"

    def __repr__(self):
        return "ConsulSettings(%s://%s:%s, dc=%s, token=%s)" % (
            self.scheme, self.host, self.port, self.datacenter, "set" if self.token else "none")

    @property
    def address(self):
        return "%s:%s" % (self.host, self.port)

    def client(self):
        """A py-consul client for these settings."""
        if py_consul is None:
            raise ConsulConfigError("the py-consul Python library is required (pip install py-consul)")
        verify = self.ca_path if (self.validate_certs and self.ca_path) else bool(self.validate_certs)
        cert = (self.client_cert, self.client_key) if self.client_cert else None
        kwargs = {} if self.timeout is None else {"connections_timeout": self.timeout}
        return py_consul.Consul(host=self.host, port=self.port, scheme=self.scheme, token=self.token,
                                verify=verify, cert=cert, dc=self.datacenter, **kwargs)

    def kv(self):
        """py-consul's kv for these settings, its reads made in the chosen consistency."""
        kv = self.client().kv
        return kv if self.consistency == "default" else ConsistentReads(kv, self.consistency)


class ConsistentReads:
    """A py-consul kv whose get() asks for ``consistency`` (stale or consistent); writes unchanged."""

    def __init__(self, kv, consistency):
        self._kv = kv
        self.consistency = consistency

    def get(self, key, **kwargs):
        kwargs.setdefault("consistency", self.consistency)
        return self._kv.get(key, **kwargs)

    def __getattr__(self, name):
        return getattr(self._kv, name)


def split_address(address, default_port=DEFAULT_PORT):
    """'host:port', 'host', '[v6]:port' or a URL -> (scheme or None, host, port)."""
    scheme = None
    if "://" in address:
        scheme, address = address.split("://", 1)
    address = address.rstrip("/")
    if address.startswith("["):
        host, dummy, rest = address[1:].partition("]")
        port = rest.lstrip(":") or default_port
    elif address.count(":") == 1:
        host, port = address.split(":")
    else:
        host, port = address, default_port
    try:
        port = int(port)
    except ValueError:
        raise ConsulConfigError("consul address %r has a bad port %r" % (address, port)) from None
    if host == GATEWAY_HOST:
        host = default_gateway()
    return scheme, host, port


def default_gateway(route_table=None):
    """The IPv4 default gateway of this network namespace (Linux's route table)."""
    route_table = route_table or ROUTE_TABLE
    try:
        with open(route_table) as handle:
            lines = handle.read().splitlines()[1:]
    except OSError as error:
        raise ConsulConfigError("consul address %s: cannot read the route table %s: %s"
                                % (GATEWAY_HOST, route_table, error)) from None
    for line in lines:
        fields = line.split()
        # Iface Destination Gateway Flags ...: a default route (destination 0) through a gateway (flag 2)
        if len(fields) > 3 and fields[1] == "00000000" and int(fields[3], 16) & 2:
            return socket.inet_ntoa(struct.pack("<L", int(fields[2], 16)))
    raise ConsulConfigError("consul address %s: this host has no IPv4 default route" % GATEWAY_HOST)


def _env_bool(value):
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def settings_from_environment(environ=None):
    """Keyword arguments for ConsulSettings from the Consul CLI's environment variables."""
    environ = os.environ if environ is None else environ
    result = {}
    if environ.get("CONSUL_HTTP_ADDR"):
        scheme, host, port = split_address(environ["CONSUL_HTTP_ADDR"])
        result.update(host=host, port=port)
        if scheme:
            result["scheme"] = scheme
    if "CONSUL_HTTP_SSL" in environ:
        result["scheme"] = "https" if _env_bool(environ["CONSUL_HTTP_SSL"]) else "http"
    if "CONSUL_HTTP_SSL_VERIFY" in environ:
        result["validate_certs"] = _env_bool(environ["CONSUL_HTTP_SSL_VERIFY"])
    for var, key in (("CONSUL_HTTP_TOKEN", "token"), ("CONSUL_HTTP_TOKEN_FILE", "token_file"),
                     ("CONSUL_CACERT", "ca_path"), ("CONSUL_CLIENT_CERT", "client_cert"),
                     ("CONSUL_CLIENT_KEY", "client_key")):
        if environ.get(var):
            result[key] = environ[var]
    return result


# Ansible's side of the same options. Defaults are None so that the Consul CLI's environment
# variables can fill what a task leaves out (see settings_from_params).
CONSUL_ARGUMENT_SPEC = dict(
    host=dict(type="str"),
    port=dict(type="int"),
    scheme=dict(type="str", choices=["http", "https"]),
    token=dict(type="str", no_log=True),
    validate_certs=dict(type="bool"),
    ca_path=dict(type="path"),
    client_cert=dict(type="path"),
    client_key=dict(type="path"),
    datacenter=dict(type="str"),
    timeout=dict(type="float"),
    consistency=dict(type="str", choices=list(CONSISTENCY_MODES)),
)


def settings_from_params(params, environ=None):
    """ConsulSettings from module or lookup options: the options given, else the environment, else defaults."""
    kwargs = settings_from_environment(environ)
    for name in CONSUL_ARGUMENT_SPEC:
        if params.get(name) is not None:
            kwargs[name] = params[name]
    if params.get("token") is not None:
        kwargs.pop("token_file", None)
    if kwargs.get("timeout") is None:
        kwargs["timeout"] = 30.0
    return ConsulSettings(**kwargs)
