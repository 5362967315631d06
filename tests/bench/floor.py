"""The floor: the least a watcher can do to bring an assignment into Envoy, measured beside envoyd.

A blocking query on the key, the value's JSON read into the endpoints of one cluster (as the shipped
template has, with the same active health checks, paced alike, and panic threshold, so that both Envoys do the same
work), one CDS file written and renamed into Envoy's watched directory; an Envoy of its own routes
every gRPC call to that cluster. No template, no checks of the data, no validation, no confirmation:
what envoyd takes beyond this on the same change, watching the same key at the same time, is envoyd's
own cost.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import threading
from pathlib import Path

from ansible_collections.voltha.envoy.plugins.module_utils._envoy.binary import find_envoy
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.render import (
    merge_variables,
    paced_health_checks,
    panic_threshold,
)
from tests.bench.harness import admin_stat
from tests.support.processes import ManagedProcess, free_port, wait_for

CLUSTER = "cores"


def cluster(cores: dict) -> dict:
    """The one cluster of the cores, health-checked as the shipped template does."""
    endpoints = [{"endpoint": {"address": {"socket_address": {"address": c["host"], "port_value": c["port"]}}}}
                 for c in cores.values()]
    shipped = merge_variables({})
    paced = paced_health_checks(shipped, len(cores))
    checks = {"timeout": shipped["health_check_timeout"], "interval": paced["health_check_interval"],
              "no_traffic_interval": paced["health_check_interval"],
              "unhealthy_threshold": shipped["health_check_unhealthy_threshold"],
              "healthy_threshold": shipped["health_check_healthy_threshold"], "grpc_health_check": {}}
    if paced["health_check_initial_jitter"]:
        checks["initial_jitter"] = paced["health_check_initial_jitter"]
    return {
        "name": CLUSTER, "type": "STATIC", "connect_timeout": "1s", "lb_policy": "ROUND_ROBIN",
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}},
        "health_checks": [checks],
        "common_lb_config": {"healthy_panic_threshold": {
            "value": panic_threshold(shipped["healthy_panic_threshold"], len(cores))}},
        "load_assignment": {"cluster_name": CLUSTER, "endpoints": [{"lb_endpoints": endpoints}]},
    }


def _cds(cores: dict, version: int) -> str:
    resources = [dict({"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster"}, **cluster(cores))]
    return json.dumps({"version_info": str(version), "resources": resources}, separators=(",", ":"))


def bootstrap(listen_port: int, admin_port: int, xds_dir: Path | None = None, cores: dict | None = None) -> dict:
    """The floor's bootstrap, its cluster from a CDS file in xds_dir; or (the seed's) static, of ``cores``."""
    router = {"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
    manager_type = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    manager = {
        "@type": "type.googleapis.com/" + manager_type,
        "stat_prefix": "floor", "codec_type": "AUTO", "http_filters": [router],
        # The cluster comes later, from the CDS file.
        "route_config": {"validate_clusters": False, "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": CLUSTER, "timeout": "0s"}}]}]}}
    config = {
        "node": {"id": "floor", "cluster": "floor"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {"listeners": [{
            "name": "nbi", "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen_port}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                            "typed_config": manager}]}]}]},
    }
    if xds_dir is None:
        config["static_resources"]["clusters"] = [cluster(cores or {})]
    else:
        config["dynamic_resources"] = {"cds_config": {
            "path_config_source": {"path": str(xds_dir / "cds.json"), "watched_directory": {"path": str(xds_dir)}},
            "resource_api_version": "V3"}}
    return config


class FloorWatcher:
    """The reference watcher and its Envoy; stop() ends both."""

    def __init__(self, workdir: Path, consul_address: str, key: str):
        self.workdir = workdir
        self.xds = workdir / "xds"
        self.xds.mkdir(parents=True, exist_ok=True)
        self.consul_address, self.key = consul_address, key
        self.listen_port, self.admin_port = free_port(), free_port()
        self.stop_event = threading.Event()
        self.envoy: ManagedProcess | None = None
        self.thread: threading.Thread | None = None
        self.version = 0
        self.index_changes = 0  # answers with a new index: the writes it made

    @property
    def nbi(self) -> str:
        return f"127.0.0.1:{self.listen_port}"

    def write(self, cores: dict) -> None:
        self.version += 1
        tmp = self.xds / ".cds.json.tmp"
        tmp.write_text(_cds(cores, self.version))
        os.rename(tmp, self.xds / "cds.json")

    def start(self) -> FloorWatcher:
        self.write({})
        path = self.workdir / "bootstrap.json"
        path.write_text(json.dumps(bootstrap(self.listen_port, self.admin_port, self.xds)))
        self.envoy = ManagedProcess("floor-envoy", [find_envoy(), "-c", str(path), "--disable-hot-restart",
                                                    "-l", "error"], self.workdir / "envoy.log")
        self.envoy.wait_ready(lambda: self.stat("server.live") == 1, 30)
        self.thread = threading.Thread(target=self._watch, name="floor-watch", daemon=True)
        self.thread.start()
        return self

    def _watch(self) -> None:
        host, port = self.consul_address.rsplit(":", 1)
        conn, index = http.client.HTTPConnection(host, int(port), timeout=10), 0
        while not self.stop_event.is_set():
            try:
                conn.request("GET", f"/v1/kv/{self.key}?index={index}&wait=2s")
                response = conn.getresponse()
                body = response.read()
            except OSError:
                conn.close()
                self.stop_event.wait(0.05)
                continue
            new_index = int(response.getheader("X-Consul-Index") or 0)
            if response.status == 200 and new_index != index:
                value = json.loads(body)[0].get("Value")
                self.write(json.loads(base64.b64decode(value)) if value else {})
                self.index_changes += 1
            index = new_index if new_index >= index else 0

    def stat(self, name: str) -> int | None:
        return admin_stat(f"http://127.0.0.1:{self.admin_port}", name)

    def members(self) -> int | None:
        return self.stat(f"cluster.{CLUSTER}.membership_total")

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread:
            self.thread.join(5)
        if self.envoy:
            self.envoy.stop()
            self.envoy = None


def wait_members(count_of, count: int, timeout: float = 120) -> None:
    wait_for(lambda: count_of() == count, timeout, f"{count} cores in Envoy", interval=0.002)
