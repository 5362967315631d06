"""The lab's three test hosts (scripts/cluster.py): network namespaces on a bridge, a dockerd each
with a hostname of its own, the registry on node1; brought up, found running, and taken down to
nothing, as `make lab-cluster` and `make lab-cluster-down` do. Each test has a cluster directory of
its own, so its names, bridge and subnet are its own too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from scripts.cluster import Cluster
from tests.support.paths import REPO

pytestmark = pytest.mark.slow

SCRIPT = REPO / "scripts" / "cluster.py"


def cluster(directory: Path, *args: str, subnet: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, CLUSTER_DIR=str(directory), CLUSTER_SUBNET=subnet)
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=300)


def in_node(netns: str, code: str) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "--", sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=30)


def registry_status(address: str) -> str:
    return ("import urllib.request\n"
            f"print(urllib.request.urlopen('http://{address}:5000/v2/', timeout=5).status)")


@pytest.fixture
def hosts(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the test hosts are network namespaces with a dockerd each, which needs root")
    directory = tmp_path / "cluster"
    try:
        up = cluster(directory, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        yield directory, json.loads((directory / "nodes.json").read_text())
    finally:
        cluster(directory, "down", "--purge")


def test_three_hosts_each_with_its_engine_name_and_address(hosts):
    directory, nodes = hosts
    assert [n["name"] for n in nodes] == ["node1", "node2", "node3"]
    assert sorted(nodes[0]) == ["address", "docker_host", "name", "netns"]
    addresses = [n["address"] for n in nodes]
    assert len(set(addresses)) == 3 and len({a.rsplit(".", 1)[0] for a in addresses}) == 1
    for node in nodes:
        client = docker.DockerClient(base_url=node["docker_host"], timeout=30)
        info = client.info()
        client.close()
        # Its own hostname (the swarm tells nodes apart by it), data root and no swarm yet.
        assert info["Name"] == node["name"]
        assert info["DockerRootDir"] == str(directory / node["name"] / "data")
        assert info["Swarm"]["LocalNodeState"] == "inactive"
        assert (directory / node["name"] / "dockerd.log").stat().st_size > 0
        # Every node reaches node1's registry across the bridge, from its own address.
        reached = in_node(node["netns"], registry_status(nodes[0]["address"]))
        assert (reached.returncode, reached.stdout.strip()) == (0, "200"), reached.stderr[-500:]
    # And this namespace reaches every node.
    assert subprocess.run([sys.executable, "-c", registry_status(nodes[0]["address"])], capture_output=True,
                          text=True, timeout=30).stdout.strip() == "200"


def test_up_again_changes_nothing_and_down_removes_everything_once(hosts):
    directory, nodes = hosts
    pids = [int((directory / n["name"] / "dockerd.pid").read_text()) for n in nodes]
    again = cluster(directory, "up")
    assert again.returncode == 0, again.stderr
    assert [line for line in again.stdout.splitlines() if "started" in line] == []
    assert [int((directory / n["name"] / "dockerd.pid").read_text()) for n in nodes] == pids

    down = cluster(directory, "down")
    assert down.returncode == 0, down.stderr
    said = down.stdout
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"dockerd {pid} still runs after down"
    for node in nodes:
        assert f"{node['name']}: dockerd (pid" in said and not Path(f"/run/netns/{node['netns']}").exists()
        assert not Path(node["docker_host"].removeprefix("unix://")).exists()
    bridge = next(line.split()[3] for line in said.splitlines() if line.startswith("cluster: removed bridge"))
    assert_no_link(bridge)
    rule = ["FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"]
    checked = subprocess.run(["iptables", "-C", *rule], capture_output=True, text=True, timeout=30)
    assert (checked.returncode, checked.stderr.strip()) == (
        1, "iptables: Bad rule (does a matching rule exist in that chain?)."), checked
    assert [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(directory) in line] == []
    quiet = cluster(directory, "down")
    assert (quiet.returncode, quiet.stdout.strip()) == (0, "cluster: nothing to stop or remove")


def assert_no_link(name: str) -> None:
    shown = subprocess.run(["ip", "link", "show", name], capture_output=True, text=True, timeout=30)
    assert (shown.returncode, shown.stderr.strip()) == (1, f'Device "{name}" does not exist.'), shown


def test_a_subnet_this_machine_routes_is_refused_and_nothing_is_made(tmp_path):
    """A link of this namespace holds 198.19.251.1/24 (as an uplink or a VPN would): a cluster there is refused
    with the route and the address named, before any namespace or bridge exists."""
    link = f"vetaken{os.getpid() % 100000}"
    subprocess.run(["ip", "link", "add", link, "type", "bridge"], check=True, timeout=30)
    try:
        subprocess.run(["ip", "addr", "add", "198.19.251.1/24", "dev", link], check=True, timeout=30)
        subprocess.run(["ip", "link", "set", link, "up"], check=True, timeout=30)
        refused = cluster(tmp_path / "cluster", "up", subnet="198.19.251.0/24")
        assert refused.returncode == 1
        assert refused.stderr.startswith("cluster: FAILED: the cluster's subnet 198.19.251.0/24 overlaps the route "
                                         f"to 198.19.251.0/24 (dev {link}), the address 198.19.251.1 of {link}")
        assert not (tmp_path / "cluster").exists()
        would_be = Cluster(tmp_path / "cluster", subnet="198.19.251.0/24")
        assert [n.netns for n in would_be.nodes if Path(f"/run/netns/{n.netns}").exists()] == []
        assert_no_link(would_be.bridge)
    finally:
        subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=30)
