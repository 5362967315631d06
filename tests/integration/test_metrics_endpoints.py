"""What the lab's Prometheus scrapes, on the real parts: a core's --metrics-port (calls by method and
code, devices) and envoyd's /envoy/stats/prometheus (the serving Envoy's own metrics)."""

from __future__ import annotations

import json
import sys
import urllib.request

import grpc
import pytest

from tests.support.grpc_client import NbiClient
from tests.support.paths import source_env
from tests.support.processes import ManagedProcess, free_port

KEY = "test/metrics/assignment"


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


@pytest.fixture
def core_with_metrics(tmp_path):
    port, metrics_port = free_port(), free_port()
    process = ManagedProcess("core", [sys.executable, "-m", "voltha_core_sim", "--core-id", "m-1", "--port",
                                      str(port), "--metrics-port", str(metrics_port)], tmp_path / "core.log",
                             env=source_env())
    try:
        process.wait_ready(lambda: "voltha_core_devices" in _try_scrape(metrics_port), 20)
        yield port, metrics_port
    finally:
        process.stop()


def _try_scrape(port: int) -> str:
    try:
        return scrape(f"http://127.0.0.1:{port}/metrics")
    except OSError:
        return ""


def test_a_core_counts_its_calls_by_method_and_code(core_with_metrics):
    port, metrics_port = core_with_metrics
    client = NbiClient(f"127.0.0.1:{port}")
    try:
        for _dummy in range(3):
            client.create_device()
        with pytest.raises(grpc.RpcError) as missing:
            client.stub.GetDevice(__import__("voltha_protos.common_pb2", fromlist=["ID"]).ID(id="nope"), timeout=5)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        client.close()
    text = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
    assert 'voltha_core_calls_total{code="OK",method="CreateDevice"} 3.0' in text
    assert 'voltha_core_calls_total{code="NOT_FOUND",method="GetDevice"} 1.0' in text
    assert "voltha_core_devices 3.0" in text
    assert 'voltha_core_info{core_id="m-1"} 1.0' in text


def test_envoyd_serves_envoys_own_metrics(consul_agent, cores, start_envoyd):
    consul_agent.client().kv.put(KEY, json.dumps({"a": {"id": cores[0].core_id, "host": "127.0.0.1",
                                                        "port": cores[0].port}}))
    envoyd = start_envoyd(consul_agent.address, extra=("--assignment-key", KEY))
    text = scrape(f"http://127.0.0.1:{envoyd.status_port}/envoy/stats/prometheus")
    assert "envoy_cluster_membership_total{envoy_cluster_name=\"voltha-grpc\"} 1" in text
    metrics = scrape(f"http://127.0.0.1:{envoyd.status_port}/metrics")
    assert 'envoyd_envoy_hosts{cluster="voltha-grpc",state="healthy"} 1.0' in metrics
