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


def registry_answers(address: str, directory: Path) -> str:
    """Code that prints how node1's registry answers: over TLS with its CA, GET /v2/ and the start of a push
    (POST of a blob upload) without a login and with the user's; then GET /v2/ in plaintext."""
    home = directory / "registry"
    return f"""
import base64, json, ssl, urllib.error, urllib.request
trusted = ssl.create_default_context(cafile={str(home / "tls" / "ca.crt")!r})
password = open({str(home / "auth" / "password")!r}).read().strip()
login = "Basic " + base64.b64encode(("voltha:" + password).encode()).decode()
def ask(method, path, headers, context=trusted, scheme="https"):
    request = urllib.request.Request(f"{{scheme}}://{address}:5000{{path}}", method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as answer:
            return [answer.status, ""]
    except urllib.error.HTTPError as err:
        body = err.read().decode()
        return [err.code, json.loads(body)["errors"][0]["code"] if body.startswith("{{") else body.strip()]
print(json.dumps([ask("GET", "/v2/", {{}}), ask("POST", "/v2/probe/blobs/uploads/", {{}}),
                  ask("GET", "/v2/", {{"Authorization": login}}),
                  ask("POST", "/v2/probe/blobs/uploads/", {{"Authorization": login}}),
                  ask("GET", "/v2/", {{}}, None, "http")]))
"""


REGISTRY_ANSWERS = [[401, "UNAUTHORIZED"], [401, "UNAUTHORIZED"], [200, ""], [202, ""],
                    [400, "Client sent an HTTP request to an HTTPS server."]]


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
        # Every node reaches node1's registry across the bridge, from its own address: over TLS with the
        # registry's CA, anonymous reads and pushes refused, the user's login accepted, plaintext refused.
        reached = in_node(node["netns"], registry_answers(nodes[0]["address"], directory))
        assert (reached.returncode, json.loads(reached.stdout or "null")) == (0, REGISTRY_ANSWERS), reached.stderr
    # And this namespace reaches every node.
    here = subprocess.run([sys.executable, "-c", registry_answers(nodes[0]["address"], directory)],
                          capture_output=True, text=True, timeout=30)
    assert json.loads(here.stdout or "null") == REGISTRY_ANSWERS, here.stderr
    # The registry's key and its user's password are for root's eyes only.
    for secret in ("tls/ca.key", "tls/registry.key", "auth/password", "auth/htpasswd"):
        assert (directory / "registry" / secret).stat().st_mode & 0o077 == 0, secret


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
