"""Unit tests for hosts.py: Envoy's /clusters?format=json read as one state per host."""

import pytest

from envoyd.hosts import host_state, host_views, state_counts


def host(name, port, **health):
    return {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}, "hostname": name,
            "health_status": dict({"eds_health_status": "HEALTHY"}, **health),
            "stats": [{"name": "cx_active", "value": "2", "type": "GAUGE"}, {"name": "rq_active", "value": str(port)}]}


CLUSTERS = {"cluster_statuses": [
    {"name": "voltha-grpc", "host_statuses": [
        host("core-0", 1), host("core-1", 2, failed_outlier_check=True),
        host("core-2", 3, failed_active_health_check=True)]},
    {"name": "voltha-grpc-rr", "host_statuses": [host("core-0", 1), host("core-1", 2)]},
    {"name": "other", "host_statuses": [host("x", 9, eds_health_status="UNHEALTHY")]},
]}


def test_each_host_gets_its_state_and_flags():
    views = host_views(CLUSTERS, names={"voltha-grpc", "voltha-grpc-rr"})
    assert [tuple(v) for v in views] == [
        ("voltha-grpc", "core-0", "127.0.0.1:1", "healthy", (), 1),
        ("voltha-grpc", "core-1", "127.0.0.1:2", "ejected", ("failed_outlier_check",), 2),
        ("voltha-grpc", "core-2", "127.0.0.1:3", "failing_checks", ("failed_active_health_check",), 3),
        ("voltha-grpc-rr", "core-0", "127.0.0.1:1", "healthy", (), 1),
        ("voltha-grpc-rr", "core-1", "127.0.0.1:2", "healthy", (), 2),
    ]


@pytest.mark.parametrize("health,state", [
    ({}, "healthy"),
    ({"eds_health_status": "UNKNOWN"}, "healthy"),
    ({"failed_outlier_check": True, "failed_active_health_check": True}, "ejected"),
    ({"failed_active_health_check": True, "pending_active_hc": True}, "pending_check"),
    ({"active_hc_timeout": True}, "failing_checks"),
    ({"eds_health_status": "DRAINING"}, "unhealthy"),
])
def test_host_state(health, state):
    assert host_state(health) == state


def test_counts_name_every_state_of_every_cluster():
    counts = state_counts(host_views(CLUSTERS))
    assert counts[("voltha-grpc", "healthy")] == 1 and counts[("voltha-grpc", "ejected")] == 1
    assert counts[("voltha-grpc-rr", "ejected")] == 0
    assert counts[("other", "unhealthy")] == 1
    assert len(counts) == 3 * 5
    assert host_views(None) == [] and host_views({}) == []
