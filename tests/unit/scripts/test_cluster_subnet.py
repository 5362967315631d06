"""The test hosts' subnet: derived from the cluster directory, and refused where this machine's network is."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from scripts.cluster import SUBNET_POOL, Cluster, conflicts, derived_subnet, parse_subnet
from scripts.docker_engine import EngineError

UPLINK = [{"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
          {"dst": "192.0.2.0/24", "dev": "eth0", "protocol": "kernel", "prefsrc": "192.0.2.2"}]
ADDRESSES = [{"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1"}]},
             {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "192.0.2.2"},
                                              {"family": "inet6", "local": "fe80::1"}]}]


def test_the_machines_own_uplink_is_refused_and_named():
    found = conflicts(ipaddress.ip_network("192.0.2.0/24"), UPLINK, ADDRESSES, ["10.255.255.53"], "vec000000")
    assert found == ["the route to 192.0.2.0/24 (dev eth0)", "the address 192.0.2.2 of eth0"]


def test_a_range_holding_the_resolver_is_refused():
    found = conflicts(ipaddress.ip_network("10.255.255.0/24"), UPLINK, ADDRESSES, ["10.255.255.53"], "vec000000")
    assert found == ["the DNS resolver 10.255.255.53 (/etc/resolv.conf)"]


def test_a_free_range_passes_and_the_default_route_and_our_own_bridge_do_not_count():
    ours = [{"dst": "198.18.7.0/24", "dev": "vec123456", "protocol": "kernel"}]
    bridge = [{"ifname": "vec123456", "addr_info": [{"family": "inet", "local": "198.18.7.1"}]}]
    assert conflicts(ipaddress.ip_network("198.18.7.0/24"), UPLINK + ours, ADDRESSES + bridge,
                     ["10.255.255.53"], "vec123456") == []


def test_another_bridge_in_the_range_is_refused():
    docker = [{"dst": "198.18.0.0/16", "dev": "br-1a2b3c", "protocol": "kernel"}]
    found = conflicts(ipaddress.ip_network("198.18.7.0/24"), UPLINK + docker, ADDRESSES, [], "vec123456")
    assert found == ["the route to 198.18.0.0/16 (dev br-1a2b3c)"]


def test_the_derived_subnet_is_a_slash_24_of_the_pool_and_differs_between_directories():
    subnets = {derived_subnet(Path(f"/work/clone-{n}/.state/cluster")) for n in range(20)}
    assert all(s.prefixlen == 24 and s.subnet_of(SUBNET_POOL) for s in subnets)
    assert len(subnets) > 10
    assert derived_subnet(Path("/a")) == derived_subnet(Path("/a"))


def test_a_chosen_subnet_gives_the_addresses():
    cluster = Cluster(Path("/tmp/x"), subnet="198.19.40.0/24")
    assert (cluster.gateway, [n.address for n in cluster.nodes]) == ("198.19.40.1", ["198.19.40.11", "198.19.40.12",
                                                                                   "198.19.40.13"])


@pytest.mark.parametrize("text, words", [("198.18.7.1/24", "has host bits set"), ("fd00::/64", "IPv4"),
                                         ("198.18.7.0/29", "/28 or larger"), ("nonsense", "is not a network")])
def test_a_bad_chosen_subnet_is_refused_naming_it(text, words):
    with pytest.raises(EngineError, match=f"CLUSTER_SUBNET={text!r}") as error:
        parse_subnet(text)
    assert words in str(error.value)
