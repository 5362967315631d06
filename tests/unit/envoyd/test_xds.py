"""A rendered bootstrap as xDS resources: what goes to Envoy over ADS, and bytes equal to protobuf's own."""

import json

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import parse_assignment
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.render import Renderer
from envoyd.xds import (
    ADS_CLUSTER,
    CLUSTER,
    ENDPOINTS,
    LISTENER,
    Encoder,
    ResourceBuilder,
    XdsError,
    ads_bootstrap,
    resources,
    socket_path,
)

pytest.importorskip("envoy.config.cluster.v3.cluster_pb2", reason="xds-protos is in the test venv")
from envoy.config.cluster.v3 import cluster_pb2  # noqa: E402
from envoy.config.endpoint.v3 import endpoint_pb2  # noqa: E402
from envoy.config.listener.v3 import listener_pb2  # noqa: E402
from google.protobuf import json_format  # noqa: E402


def rendered(hosts, variables=None):
    value = json.dumps({f"p{i}": {"id": f"core-{i}", "host": host, "port": 50557} for i, host in enumerate(hosts)})
    renderer = Renderer(None, variables or {})
    return renderer.render(parse_assignment(value, default_port=50556)).config


def test_the_bootstrap_keeps_no_listener_or_cluster_but_the_ads_one():
    config = rendered(["127.0.0.1"])
    bootstrap = ads_bootstrap(config, "/run/envoyd/xds.sock")
    assert [c["name"] for c in bootstrap["static_resources"]["clusters"]] == [ADS_CLUSTER]
    assert "listeners" not in bootstrap["static_resources"]
    pipe = bootstrap["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert pipe["endpoint"]["address"]["pipe"]["path"] == "/run/envoyd/xds.sock"
    assert bootstrap["dynamic_resources"]["cds_config"] == {"ads": {}, "resource_api_version": "V3"}
    ads = bootstrap["dynamic_resources"]["ads_config"]
    assert ads["grpc_services"] == [{"envoy_grpc": {"cluster_name": ADS_CLUSTER}}]
    assert bootstrap["admin"] == config["admin"]
    assert "static_resources" in config and config["static_resources"]["clusters"][0]["name"] == "voltha-grpc"


def test_a_static_cluster_becomes_an_eds_cluster_and_its_endpoints():
    found = resources(rendered(["127.0.0.1", "127.0.0.2"]))
    [(name, cluster)] = found[CLUSTER]
    assert name == "voltha-grpc" and cluster["type"] == "EDS" and "load_assignment" not in cluster
    assert cluster["ignore_health_on_host_removal"] is True
    [(eds_name, assignment)] = found[ENDPOINTS]
    assert eds_name == "voltha-grpc" and assignment["cluster_name"] == "voltha-grpc"
    assert len(assignment["endpoints"][0]["lb_endpoints"]) == 2
    assert [item[0] for item in found[LISTENER]] == ["voltha_nbi"]


def test_encoded_bytes_are_protobufs_own():
    config = rendered([f"127.0.{i // 250}.{1 + i % 250}" for i in range(300)])
    encoder = Encoder()
    for type_url, message in ((CLUSTER, cluster_pb2.Cluster), (LISTENER, listener_pb2.Listener),
                              (ENDPOINTS, endpoint_pb2.ClusterLoadAssignment)):
        for data in [item[1] for item in resources(config)[type_url]]:
            ours = message.FromString(encoder.encode(type_url, data))
            assert ours == json_format.ParseDict(data, message())
    again = resources(config)[ENDPOINTS][0][1]
    assert encoder.encode(ENDPOINTS, again) == encoder.encode(ENDPOINTS, again)


@pytest.mark.parametrize("host,port,hostname", [
    ("127.0.0.1", 50556, "core-1"), ("::1", 1, "c"), ("core.example", 65535, "é😀 x"), ("10.0.0.1", 80, ""),
    ("10.0.0.1", 300, "a" * 200), ("h", 2 ** 32 - 1, "x"),
])
def test_endpoints_written_field_by_field_are_the_bytes_protobuf_writes(host, port, hostname):
    assignment = {"cluster_name": "c", "endpoints": [{"lb_endpoints": [{"endpoint": {
        "address": {"socket_address": {"address": host, "port_value": port}}, "hostname": hostname}}]}]}
    expected = json_format.ParseDict(assignment, endpoint_pb2.ClusterLoadAssignment())
    assert Encoder().encode(ENDPOINTS, assignment) == expected.SerializeToString(deterministic=True)


@pytest.mark.parametrize("odd", [
    {"address": {"socket_address": {"address": "10.0.0.1", "port_value": "80"}}, "hostname": "c"},
    {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 80}}, "hostname": "c",
     "health_check_config": {"port_value": 81}},
    {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 80}}},
    {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 0}}, "hostname": "c"},
])
def test_endpoints_of_another_shape_go_through_json_format(odd):
    assignment = {"cluster_name": "c", "endpoints": [{"lb_endpoints": [{"endpoint": odd}]}]}
    expected = json_format.ParseDict(assignment, endpoint_pb2.ClusterLoadAssignment())
    assert Encoder().encode(ENDPOINTS, assignment) == expected.SerializeToString(deterministic=True)


def test_an_unknown_field_is_named():
    with pytest.raises(XdsError, match="Cluster.*no_such_field"):
        Encoder().encode(CLUSTER, {"name": "x", "no_such_field": 1})


def test_endpoints_that_share_no_core_with_the_last_ones_come_with_a_new_cluster():
    builder = ResourceBuilder()

    def eds(config):
        built = builder.build(config)
        cluster = cluster_pb2.Cluster.FromString(built[CLUSTER][0][1])
        return cluster.eds_cluster_config.service_name, [item[0] for item in built[ENDPOINTS]]

    assert eds(rendered(["127.0.0.1", "127.0.0.2"])) == ("", ["voltha-grpc"])
    assert eds(rendered(["127.0.0.2", "127.0.0.3"])) == ("", ["voltha-grpc"])  # one core stays: endpoints only
    assert eds(rendered(["127.0.0.4"])) == ("voltha-grpc/1", ["voltha-grpc/1"])  # none stays: a new cluster
    assert eds(rendered(["127.0.0.4", "127.0.0.5"])) == ("voltha-grpc/1", ["voltha-grpc/1"])


def test_a_cluster_that_changed_itself_comes_with_endpoints_of_its_own():
    # Under the old name, the old cluster would take the new endpoints while the new one warms, and
    # every core would be checked by both.
    builder = ResourceBuilder()
    builder.build(rendered(["127.0.0.1", "127.0.0.2"]))
    built = builder.build(rendered(["127.0.0.1", "127.0.0.2"], {"health_check_interval": "1s"}))
    cluster = cluster_pb2.Cluster.FromString(built[CLUSTER][0][1])
    assert cluster.eds_cluster_config.service_name == "voltha-grpc/1"
    assert [item[0] for item in built[ENDPOINTS]] == ["voltha-grpc/1"]
    # The health-check pace follows the count of cores: past 400 cores, the cluster changes.
    paced = ResourceBuilder()
    hosts = [f"127.1.{i // 250}.{1 + i % 250}" for i in range(400)]
    assert [item[0] for item in paced.build(rendered(hosts))[ENDPOINTS]] == ["voltha-grpc"]
    assert [item[0] for item in paced.build(rendered(hosts + ["127.0.0.1"]))[ENDPOINTS]] == ["voltha-grpc/1"]
    assert [item[0] for item in paced.build(rendered(hosts + ["127.0.0.2"]))[ENDPOINTS]] == ["voltha-grpc/1"]


def test_a_socket_path_too_long_for_unix_sockets_is_refused(tmp_path):
    assert socket_path(str(tmp_path)).endswith("/xds.sock")
    with pytest.raises(XdsError, match="longer than a unix socket may have"):
        socket_path("/" + "d" * 120)
