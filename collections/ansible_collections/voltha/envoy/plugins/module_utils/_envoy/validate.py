# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Validation of a rendered bootstrap by the real Envoy (``envoy --mode validate``), and the config
shapes that let a config Envoy accepted once stand for every config of the same shape.

The rendered config is always a complete static bootstrap: that is what Envoy validates
(``--mode validate`` does not read the files behind ``path_config_source``). Used by envoyd's
applier and the envoy_config module.
"""

import hashlib
import json
import os
import subprocess
import tempfile

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import host_kind
from ansible_collections.voltha.envoy.plugins.module_utils._common.errors import VolthaEnvoyError
from ansible_collections.voltha.envoy.plugins.module_utils._common.yaml_io import load_yaml


class ConfigRejected(VolthaEnvoyError, ValueError):
    """Envoy rejected the config; the message is Envoy's reason."""


def _endpoint_shape(lb_endpoint, kinds):
    """What Envoy checks about one endpoint of the shape the renderer builds: the kind of its host.

    Anything else (other fields, an invalid host or port) keeps its exact value in the shape. Counts
    of keys, not sets of them: this runs for each of 10,000 endpoints.
    """
    try:
        endpoint = lb_endpoint["endpoint"]
        address = endpoint["address"]
        socket_address = address["socket_address"]
        host, port = socket_address["address"], socket_address["port_value"]
        plain = (len(lb_endpoint) == 1 and len(address) == 1 and len(socket_address) == 2
                 and len(endpoint) == (2 if "hostname" in endpoint else 1)
                 and isinstance(endpoint.get("hostname", ""), str))
    except (TypeError, KeyError):
        plain = False
    if plain and isinstance(host, str) and isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
        kind = kinds.get(host, False)
        if kind is False:
            kind = kinds[host] = host_kind(host)
        if kind:
            return "<endpoint %s>" % kind
    return json.dumps(lb_endpoint, sort_keys=True)


def _cluster_shape(cluster, kinds):
    load_assignment = cluster.get("load_assignment") if isinstance(cluster, dict) else None
    if not isinstance(load_assignment, dict):
        return cluster
    localities = []
    for locality in load_assignment.get("endpoints") or ():
        if isinstance(locality, dict):
            shapes = []
            for lb_endpoint in locality.get("lb_endpoints") or ():
                shape = _endpoint_shape(lb_endpoint, kinds)
                if shape not in shapes:
                    shapes.append(shape)
            locality = dict(locality, lb_endpoints=shapes)
        localities.append(locality)
    return dict(cluster, load_assignment=dict(load_assignment, endpoints=localities))


def config_shape(config, kinds=None):
    """A digest of the config with each cluster endpoint reduced to what Envoy checks about it.

    Two configs with the same shape differ only in endpoints whose hosts are of the same kinds (IPv4,
    IPv6, DNS name, each checked by the assignment's rules), whose ports are valid and whose
    hostnames are strings, and in how many such endpoints there are. Envoy accepts both or neither,
    so a shape it accepted once need not be validated again. Any other difference is a new shape.
    ``kinds`` ({host: kind}, from the parse) spares working out the kinds of the assignment's hosts again.
    """
    static = config.get("static_resources")
    if isinstance(static, dict) and isinstance(static.get("clusters"), list):
        kinds = {} if kinds is None else kinds
        static = dict(static, clusters=[_cluster_shape(c, kinds) for c in static["clusters"]])
        config = dict(config, static_resources=static)
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


class EnvoyValidator:
    """Validates bootstraps with ``envoy --mode validate``; remembers the shapes Envoy accepted."""

    def __init__(self, envoy_bin, workdir, use_shape_cache=True, timeout=60):
        self.envoy_bin = envoy_bin
        self.workdir = workdir
        self.use_shape_cache = use_shape_cache
        self.timeout = timeout
        self._accepted_shapes = set()
        self.envoy_runs = 0

    def validate(self, text, config=None, fmt="yaml", kinds=None):
        """Raise ConfigRejected with Envoy's reason, or return 'envoy' or 'shape-cache' (how it was checked).
        ``kinds``: the hosts' kinds from the parse (render.Built.kinds), for the shape."""
        config = load_yaml(text) if config is None else config
        shape = config_shape(config, kinds) if self.use_shape_cache else None
        if shape is not None and shape in self._accepted_shapes:
            return "shape-cache"
        self.run_envoy(text, fmt)
        if shape is not None:
            self._accepted_shapes.add(shape)
        return "envoy"

    def run_envoy(self, text, fmt="yaml"):
        fd, path = tempfile.mkstemp(prefix=".validate.", suffix="." + fmt, dir=self.workdir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            self.envoy_runs += 1
            proc = subprocess.run([self.envoy_bin, "--mode", "validate", "-c", path, "--log-level", "error",
                                   "--concurrency", "1"], capture_output=True, text=True, timeout=self.timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise ConfigRejected("envoy --mode validate did not finish within %ss" % self.timeout) from None
        except OSError as err:
            raise ConfigRejected("could not validate with %s: %s" % (self.envoy_bin, err)) from err
        finally:
            os.unlink(path)
        if proc.returncode != 0:
            raise ConfigRejected(_envoy_reason(proc.stdout + proc.stderr))


def _envoy_reason(output):
    """The useful line of Envoy's validation output."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if "error initializing configuration" in line or "critical" in line:
            return line.split("] ", 1)[-1][:2000]
    return (lines[-1] if lines else "envoy --mode validate failed without output")[:2000]
