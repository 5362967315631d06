# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Envoy config files: validation with the real Envoy, atomic writes, and the dynamic file layout.

The rendered config is always a complete static bootstrap: that is what Envoy validates
(``--mode validate`` does not read the files behind ``path_config_source``). For the dynamic mode the
same bootstrap is split into three files: a bootstrap whose listeners and clusters come from
``lds.json`` and ``cds.json``, and those two resource files, which are replaced by rename.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import subprocess
import tempfile

from ansible_collections.voltha.envoy.plugins.module_utils.assignment import host_kind
from ansible_collections.voltha.envoy.plugins.module_utils.yaml_io import load_yaml

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
BOOTSTRAP_FILE, LDS_FILE, CDS_FILE = "bootstrap.json", "lds.json", "cds.json"
# Envoy re-reads both resource files on any rename into the directory it watches, so they live in a
# directory of their own: a write of another file must not cost a reload.
RESOURCE_DIR = "xds"
STATIC_FILE = "envoy.%s"  # the rendered static bootstrap, by its format: envoy.json or envoy.yaml


class ConfigRejected(ValueError):
    """Envoy rejected the config; the message is Envoy's reason."""


def sha256_text(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_atomic(path, text, mode=0o644, durable=False):
    """Write text to path through a temporary file in the same directory and a rename.

    Readers (Envoy's file watch among them) see the old file or the new one, never a partial one.
    Returns False and writes nothing when the file already holds exactly this text. durable=True
    also fsyncs the file before the rename; envoyd does not need it (it renders every file again
    from Consul when it starts) and an fsync costs milliseconds on the data path.
    """
    data = text.encode("utf-8")
    try:
        if os.path.getsize(path) == len(data):
            with open(path, "rb") as handle:
                if handle.read() == data:
                    if (os.stat(path).st_mode & 0o7777) != mode:
                        os.chmod(path, mode)
                    return False
    except OSError:
        pass
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def _endpoint_shape(lb_endpoint, kinds):
    """What Envoy checks about one endpoint of the shape the renderer builds: the kind of its host.

    Anything else (other fields, an invalid host or port) keeps its exact value in the shape.
    """
    try:
        endpoint = lb_endpoint["endpoint"]
        address = endpoint["address"]["socket_address"]
        host, port = address["address"], address["port_value"]
        plain = (set(lb_endpoint) == {"endpoint"} and set(endpoint) <= {"address", "hostname"}
                 and set(endpoint["address"]) == {"socket_address"} and set(address) == {"address", "port_value"}
                 and isinstance(endpoint.get("hostname", ""), str))
    except (TypeError, KeyError):
        plain = False
    if plain and isinstance(host, str) and isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
        if host not in kinds:
            kinds[host] = host_kind(host)
        if kinds[host]:
            return "<endpoint %s>" % kinds[host]
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


def config_shape(config):
    """A digest of the config with each cluster endpoint reduced to what Envoy checks about it.

    Two configs with the same shape differ only in endpoints whose hosts are of the same kinds (IPv4,
    IPv6, DNS name, each checked by the assignment's rules), whose ports are valid and whose
    hostnames are strings, and in how many such endpoints there are. Envoy accepts both or neither,
    so a shape it accepted once need not be validated again. Any other difference is a new shape.
    """
    static = config.get("static_resources")
    if isinstance(static, dict) and isinstance(static.get("clusters"), list):
        kinds = {}
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

    def validate(self, text, config=None, fmt="yaml"):
        """Raise ConfigRejected with Envoy's reason, or return 'envoy' or 'shape-cache' (how it was checked)."""
        config = load_yaml(text) if config is None else config
        shape = config_shape(config) if self.use_shape_cache else None
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
            raise ConfigRejected("envoy --mode validate did not finish within %ss" % self.timeout)
        except OSError as err:
            raise ConfigRejected("could not validate with %s: %s" % (self.envoy_bin, err))
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


def split_dynamic(config, resource_dir, node_id="envoyd", node_cluster="voltha"):
    """Split a static bootstrap into (bootstrap, lds, cds) dicts for file-based dynamic config,
    with lds.json and cds.json in resource_dir."""
    bootstrap = dict(config)
    static = dict(bootstrap.pop("static_resources", None) or {})
    listeners = static.pop("listeners", None) or []
    clusters = static.pop("clusters", None) or []
    if static:
        bootstrap["static_resources"] = static  # secrets and the like stay static
    node = dict(bootstrap.get("node") or {})
    node.setdefault("id", node_id)
    node.setdefault("cluster", node_cluster)
    bootstrap["node"] = node

    def source(name):
        return {"path_config_source": {"path": os.path.join(resource_dir, name),
                                       "watched_directory": {"path": resource_dir}},
                "resource_api_version": "V3"}

    bootstrap["dynamic_resources"] = {"lds_config": source(LDS_FILE), "cds_config": source(CDS_FILE)}
    lds = {"resources": [dict({"@type": LISTENER_TYPE}, **item) for item in listeners]}
    cds = {"resources": [dict({"@type": CLUSTER_TYPE}, **item) for item in clusters]}
    return bootstrap, lds, cds


def dump_json(data):
    """Config files envoyd writes itself are compact JSON: Envoy and Python both read it fast."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"
