"""_envoy/eds.py: static clusters as EDS clusters apart from their endpoints, and the names the endpoints go under."""

from ansible_collections.voltha.envoy.plugins.module_utils._envoy.eds import (
    EndpointNames,
    eds_name,
    split_endpoints,
    with_endpoints_from,
)


def assignment(*hosts):
    return {"endpoints": [{"lb_endpoints": [
        {"endpoint": {"address": {"socket_address": {"address": host, "port_value": 50556}}}} for host in hosts]}]}


def test_only_plain_static_clusters_with_endpoints_are_split():
    static = {"name": "a", "connect_timeout": "1s", "load_assignment": assignment("10.0.0.1")}
    dns = {"name": "b", "type": "STRICT_DNS", "load_assignment": assignment("core.example")}
    custom = {"name": "c", "cluster_type": {"name": "envoy.clusters.redis"}, "load_assignment": assignment("x")}
    bare = {"name": "d"}
    split = split_endpoints([static, dns, custom, bare])
    [(name, cluster, endpoints)] = [item for item in split if item[2] is not None]
    assert name == "a" and cluster == {"name": "a", "connect_timeout": "1s", "type": "EDS",
                                       "ignore_health_on_host_removal": True}
    assert endpoints == dict(assignment("10.0.0.1"), cluster_name="a")
    assert [item[1] for item in split[1:]] == [dns, custom, bare]  # kept as they are


def test_endpoints_from_a_source_under_a_name():
    source = {"ads": {}}
    assert with_endpoints_from({"name": "a"}, "a", source) == {"name": "a",
                                                               "eds_cluster_config": {"eds_config": source}}
    assert with_endpoints_from({"name": "a"}, eds_name("a", 2), source)["eds_cluster_config"] == {
        "eds_config": source, "service_name": "a/2"}


def test_a_new_generation_for_disjoint_endpoints_or_a_changed_cluster_and_back_after_a_refusal():
    names = EndpointNames()
    cluster = {"name": "a", "type": "EDS"}
    assert names.generation("a", cluster, assignment("10.0.0.1", "10.0.0.2")) == 0
    assert names.generation("a", cluster, assignment("10.0.0.2", "10.0.0.3")) == 0  # one core in common
    served = names.state()
    assert names.generation("a", cluster, assignment("10.0.0.9")) == 1  # none in common
    names.restore(served)  # that config was refused: compared with what serves again
    assert names.generation("a", cluster, assignment("10.0.0.3", "10.0.0.9")) == 0
    assert names.generation("a", dict(cluster, connect_timeout="2s"), assignment("10.0.0.3")) == 1
